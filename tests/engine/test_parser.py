"""The expression parser: every operator, Python's precedence, constant folding, and errors that point at the
column of the bad token."""

from __future__ import annotations

import pytest

from rdbridge.engine import ExpressionSyntaxError, parse, required_fields
from rdbridge.engine.ast import Call, Const, Field
from rdbridge.engine.ops import OPERATORS

CALLS = {
    "Ref": "Ref($close, 1)", "Mean": "Mean($close, 5)", "Std": "Std($close, 5)", "Var": "Var($close, 5)",
    "Skew": "Skew($close, 5)", "Kurt": "Kurt($close, 5)", "Max": "Max($high, 5)", "Min": "Min($low, 5)",
    "Med": "Med($close, 5)", "Mad": "Mad($close, 5)", "Sum": "Sum($close, 5)",
    "Quantile": "Quantile($close, 5, 0.8)", "Rank": "Rank($close, 5)", "Count": "Count($close, 5)",
    "Delta": "Delta($close, 5)", "Slope": "Slope($close, 5)", "Rsquare": "Rsquare($close, 5)",
    "Resi": "Resi($close, 5)", "WMA": "WMA($close, 5)", "EMA": "EMA($close, 0.5)", "IdxMax": "IdxMax($high, 5)",
    "IdxMin": "IdxMin($low, 5)", "Corr": "Corr($close, $volume, 5)", "Cov": "Cov($close, $volume, 5)",
    "Greater": "Greater($open, 0)", "Less": "Less($open, $close)", "Abs": "Abs($close)", "Sign": "Sign($close)",
    "Log": "Log($volume)", "Power": "Power($close, 2)", "If": "If($close>$open, 1, 0)",
    "And": "And($close>$open, $high>$low)", "Or": "Or($close>$open, $high>$low)", "Not": "Not($close>$open)",
    "Add": "$a+$b", "Sub": "$a-$b", "Mul": "$a*$b", "Div": "$a/$b", "Gt": "$a>$b", "Ge": "$a>=$b", "Lt": "$a<$b",
    "Le": "$a<=$b", "Eq": "$a==$b", "Ne": "$a!=$b",
    "CSRank": "CSRank($close)", "CSZScore": "CSZScore(Mean($close, 5))", "CSDemean": "CSDemean($volume)",
}
INTERNAL = {"_CSValue"}  # the staged runner's node for an earlier stage's result: not in the language


@pytest.mark.parametrize("op", sorted(set(OPERATORS) - INTERNAL))
def test_every_operator_parses(op: str) -> None:
    node = parse(CALLS[op])
    assert isinstance(node, Call) and node.op == op


def test_internal_nodes_cannot_be_written() -> None:
    with pytest.raises(ExpressionSyntaxError, match="unknown operator '_CSValue'"):
        parse("_CSValue(0)")


def test_call_parameters_are_typed() -> None:
    q = parse("Quantile($close, 20, 0.2)")
    assert q == Call("Quantile", (Field("close"),), (20, 0.2))
    assert parse("EMA($close, 10)").params == (10,)
    assert parse("Ref($close, -2)").params == (-2,)


def test_precedence_follows_python() -> None:
    # * binds tighter than +, comparisons looser than arithmetic, & tighter than comparisons
    assert str(parse("$a+$b*$c")) == "Add($a,Mul($b,$c))"
    assert str(parse("($a+$b)*$c")) == "Mul(Add($a,$b),$c)"
    assert str(parse("$a-$b-$c")) == "Sub(Sub($a,$b),$c)"
    assert str(parse("$a/$b/$c")) == "Div(Div($a,$b),$c)"
    assert str(parse("$a+1>$b")) == "Gt(Add($a,1),$b)"
    assert str(parse("($a>$b) & ($c>$d) | ($e>$f)")) == "Or(And(Gt($a,$b),Gt($c,$d)),Gt($e,$f))"
    assert str(parse("$a**2*3")) == "Mul(Power($a,2),3)"


def test_unary_minus_and_constant_folding() -> None:
    assert parse("-2") == Const(-2)
    assert parse("-2**2") == Const(-4)  # Python: -(2**2)
    assert parse("2*3+1") == Const(7)
    assert parse("1e-12") == Const(1e-12)
    assert str(parse("-$close")) == "Mul(-1,$close)"
    assert str(parse("$close*-1")) == "Mul($close,-1)"
    assert parse("Ref($close, -1)").params == (-1,)


def test_required_fields() -> None:
    exprs = {"a": "Corr($close, Log($volume+1), 5)", "b": "$open/$close"}
    assert required_fields(exprs) == {"close", "volume", "open"}


@pytest.mark.parametrize(
    ("expr", "column", "words"),
    [
        ("Mean($close, 5) + Foo($x)", 19, "unknown operator 'Foo'"),
        ("mean($close, 5)", 1, "did you mean Mean"),
        ("Mean($close)", 1, "takes 2 arguments"),
        ("Mean($close, 5, 6)", 17, "takes 2 arguments"),
        ("Mean($close, 2.5)", 14, "must be an integer"),
        ("Mean($close, -3)", 14, "must be >= 0"),
        ("Mean($close, $open)", 14, "number literal"),
        ("Mean(5, 5)", 6, "not the number"),
        ("$close + # 1", 10, "unexpected character '#'"),
        ("$close + ", 10, "ends too early"),
        ("($close + 1", 12, "expected ')'"),
        ("$close + 1)", 11, "after a complete expression"),
        ("$a < $b < $c", 9, "chained comparisons"),
        ("Skew($close, 2)", 1, "Skewness operation should >= 3"),
        ("Kurt($close, 3)", 1, "Kurtosis operation should >= 5"),
        ("Quantile($close, 5, 2)", 1, "[0, 1]"),
        ("close + 1", 1, "fields start with `$`"),
        ("Mask($close, 'x')", 14, "unexpected character"),
        ("ChangeInstrument(1, $close)", 1, "not supported"),
        ("$$roe", 1, "point-in-time"),
        ("", 1, "empty expression"),
        ("1/0", 2, "division by zero"),
    ],
)
def test_errors_point_at_the_bad_token(expr: str, column: int, words: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        parse(expr)
    err = info.value
    assert err.column == column, str(err)
    assert words in str(err)
    caret_line = str(err).splitlines()[-1]
    assert caret_line.index("^") - 2 == column - 1  # two spaces of indent, then the caret under the column


def test_structurally_equal_expressions_hash_equal() -> None:
    a, b = parse("Mean($close, 5)/$close"), parse("Mean( $close ,5 ) / $close")
    assert a == b and hash(a) == hash(b)
    assert parse("Mean($close, 5)") != parse("Mean($close, 10)")
