"""PromptTemplate: variables, required-variable checking, partials, escaping."""

from __future__ import annotations

import pytest

from ember import PromptTemplate
from ember.ai import PromptTemplateError


def test_variables_and_format():
    t = PromptTemplate("Summarise {text} in {n} words. {{literal}} {text}")
    assert t.variables == ["text", "n"]
    assert t.format(text="this", n=3) == "Summarise this in 3 words. {literal} this"
    assert t(text="a", n=1).startswith("Summarise a")
    assert PromptTemplate("Hello {name}").format(name="Ada") == "Hello Ada"


def test_missing_variables_are_named():
    t = PromptTemplate("{greeting}, {name}! You are {age}.")
    with pytest.raises(PromptTemplateError, match=r"missing template variable\(s\): name, age"):
        t.format(greeting="Hi")
    assert isinstance(PromptTemplateError("x"), ValueError)


def test_unknown_variables():
    assert PromptTemplate("{a}").format(a=1, b=2) == "1"  # ignored by default
    with pytest.raises(PromptTemplateError, match=r"unknown template variable.*b"):
        PromptTemplate("{a}", strict=True).format(a=1, b=2)


def test_partial():
    t = PromptTemplate("{role}: {question}")
    p = t.partial(role="Teacher")
    assert p.variables == ["question"] and t.variables == ["role", "question"]
    assert p.format(question="why?") == "Teacher: why?"
    assert p.format(question="x", role="Student") == "Student: x"


def test_format_specs_and_attributes():
    class User:
        name = "Ada"

    t = PromptTemplate("{user.name} scored {score:.1f}")
    assert t.variables == ["user", "score"]
    assert t.format(user=User(), score=9.25) == "Ada scored 9.2"


@pytest.mark.parametrize("bad", ["broken {", "stray }", "{}", "{0}", "{ name }", "{1abc}"])
def test_malformed_templates(bad):
    with pytest.raises(PromptTemplateError):
        PromptTemplate(bad)


def test_to_messages_and_type_check():
    t = PromptTemplate("Q: {q}")
    assert t.to_messages(system="be brief", q="x") == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "Q: x"}]
    with pytest.raises(TypeError):
        PromptTemplate(42)  # type: ignore[arg-type]
