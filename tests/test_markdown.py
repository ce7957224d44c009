"""The one Markdown table writer: exact output, the form the results doc and the summaries pin."""

from nsvae.markdown import markdown_table


def test_markdown_table_exact():
    assert markdown_table(["a", "b"], [["1", "2"], ["x", ""]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n| x |  |\n"
    assert markdown_table(["only"], []) == "| only |\n|---|\n"
