import pytest
from jinja2.utils import Namespace

from promptgate.dataset import examples_from_test_data, parse_dataset
from promptgate.errors import BadInput
from promptgate.prompts import parse_prompt
from promptgate.sandbox import size_of


def test_a_plain_template_is_one_user_message() -> None:
    prompt = parse_prompt("prompts/a.txt", "Summarize: {{ text }}")
    messages = prompt.render({"text": "hello"}, "ex-1")
    assert [(m.role, m.content) for m in messages] == [("user", "Summarize: hello")]


def test_a_missing_variable_names_variable_prompt_and_example() -> None:
    prompt = parse_prompt("prompts/a.txt", "Summarize: {{ text }} for {{ audience }}")
    with pytest.raises(BadInput) as caught:
        prompt.render({"text": "hello"}, "ex-7")
    message = str(caught.value)
    assert "audience" in message and "prompts/a.txt" in message and "ex-7" in message


def test_a_template_syntax_error_points_at_its_line() -> None:
    with pytest.raises(BadInput) as caught:
        parse_prompt("prompts/a.txt", "line one\nline two {{ oops\n")
    assert caught.value.line == 2


def test_templates_cannot_reach_python_internals() -> None:
    prompt = parse_prompt("prompts/a.txt", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(BadInput) as caught:
        prompt.render({}, "ex-1")
    assert "sandbox" in caught.value.message or "undefined" in caught.value.message


def test_a_github_models_prompt_file_keeps_roles_model_and_parameters() -> None:
    text = """\
name: Summary
model: openai/gpt-4o-mini
modelParameters:
  temperature: 0.3
  maxTokens: 100
  topP: 0.9
messages:
  - role: system
    content: You are terse.
  - role: user
    content: "Summarize {{text}}"
testData:
  - text: a long story
    expected: a story
"""
    prompt = parse_prompt("prompts/s.prompt.yml", text)
    assert prompt.model == "openai/gpt-4o-mini"
    assert prompt.parameters == {"temperature": 0.3, "max_tokens": 100, "top_p": 0.9}
    messages = prompt.render({"text": "x"}, "1")
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are terse."),
        ("user", "Summarize x"),
    ]
    examples = examples_from_test_data(prompt.path, prompt.test_data or [])
    assert examples[0].vars == {"text": "a long story"} and examples[0].expected == "a story"


def test_a_prompt_file_with_an_unknown_role_is_bad_input_at_its_line() -> None:
    text = "messages:\n  - role: wizard\n    content: hi\n"
    with pytest.raises(BadInput) as caught:
        parse_prompt("p.prompt.yml", text)
    assert caught.value.line == 2


def test_a_bad_test_data_entry_is_bad_input_at_its_line() -> None:
    text = (
        "messages:\n  - role: user\n    content: '{{ text }}'\n"
        "testData:\n  - text: fine\n    expected: ok\n  - text: no reference\n"
    )
    prompt = parse_prompt("p.prompt.yml", text)
    with pytest.raises(BadInput, match="testData entry 2 has no 'expected'") as caught:
        examples_from_test_data(prompt.path, prompt.test_data or [], text)
    assert (caught.value.file, caught.value.line) == ("p.prompt.yml", 7)


def test_jsonl_ids_default_to_line_numbers() -> None:
    text = '{"vars": {"a": 1}, "expected": "x"}\n\n{"id": "named", "expected": "y"}\n'
    examples = parse_dataset("e.jsonl", text)
    assert [e.id for e in examples] == ["1", "named"]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"vars": {}, "expectd": "x"}', "expectd"),
        ('{"vars": [], "expected": "x"}', "vars"),
        ('["a list"]', "object"),
        ('{"vars": {}}', "expected"),
    ],
)
def test_a_bad_jsonl_line_is_reported_with_its_number(line: str, fragment: str) -> None:
    text = '{"expected": "fine"}\n' + line + "\n"
    with pytest.raises(BadInput) as caught:
        parse_dataset("evals/e.jsonl", text)
    assert caught.value.file == "evals/e.jsonl" and caught.value.line == 2
    assert fragment in caught.value.message


def test_duplicate_ids_are_refused() -> None:
    text = '{"id": "a", "expected": "x"}\n{"id": "a", "expected": "y"}\n'
    with pytest.raises(BadInput) as caught:
        parse_dataset("e.jsonl", text)
    assert caught.value.line == 2 and "duplicate" in caught.value.message


def test_csv_and_yaml_eval_sets_read_like_jsonl() -> None:
    csv_examples = parse_dataset("e.csv", "id,text,expected\nx1,hello,world\n")
    yaml_examples = parse_dataset(
        "e.yaml", "examples:\n  - id: x1\n    vars: {text: hello}\n    expected: world\n"
    )
    assert csv_examples == yaml_examples


def test_a_yaml_example_missing_expected_points_at_its_line() -> None:
    with pytest.raises(BadInput) as caught:
        parse_dataset("e.yaml", "- expected: a\n- vars: {x: 1}\n")
    assert caught.value.line == 2


def test_an_empty_eval_set_is_refused() -> None:
    with pytest.raises(BadInput):
        parse_dataset("e.jsonl", "\n\n")


@pytest.mark.parametrize(
    "template",
    ["{{ 9 ** 999999 }}", "{{ 'ab' * 10**9 }}", "{{ [0] * 2000000 }}", "{{ 10**7 * 'x' }}"],
)
def test_a_template_cannot_build_a_huge_number_or_string(template: str) -> None:
    """The sandbox runs no code, but size is its own attack: these would stall the job."""
    with pytest.raises(BadInput, match="template stopped") as caught:
        parse_prompt("prompts/a.txt", template).render({}, "ex-1")
    assert caught.value.file == "prompts/a.txt" and caught.value.line == 1


def test_ordinary_arithmetic_and_repetition_still_render() -> None:
    rendered = parse_prompt("p.txt", "{{ 2 ** 10 }} {{ '-' * 3 }} {{ n * 2 }}").render(
        {"n": 4}, "e"
    )
    assert rendered[0].content == "1024 --- 8"


def test_a_value_is_sized_as_written_out_each_shared_part_every_time_it_appears() -> None:
    leaf = ["ab", 1, None, {"k": "vv", 2: [1, 2]}]  # 1 + 2 + 1 + 1 + (1 + 1 + 1 + 2 + 3)
    assert size_of(leaf) == 13
    assert size_of([leaf, leaf, (leaf,)]) == 1 + 13 + 13 + 14
    assert size_of([Namespace(s="abc")]) == 1 + 1 + (1 + 1 + 3)
    shared = ["x" * 1000] * 10
    tower = [[shared] * 10] * 10  # ten million characters from one thousand
    assert size_of(tower) == 1 + 10 * (1 + 10 * (1 + 10 * 1000))
    assert 5_000 < size_of(tower, limit=5_000) < 20_000  # stops once past the limit
    deep: list[object] = []
    for _ in range(100_000):  # no recursion: nesting depth is the template's to choose
        deep = [deep]
    assert size_of(deep) == 100_001
