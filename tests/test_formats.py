"""The reasoning prompt is an interoperability constant: it must match the reference rendering byte for byte."""

from vr_plugins import formats

# The reference rendering (docs/method.md section 5), copied as the specification (a raw string: the two "\n" inside
# "separated with '\n\n'" are a literal backslash-n, not newlines).
METHOD_SYSTEM = r"""Your role as an assistant involves thoroughly exploring questions through a systematic long thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution. In the Thought section, detail your reasoning process using the specified format: <|begin_of_thought|> {thought with steps separated with '\n\n'} <|end_of_thought|> Each step should include detailed considerations such as analisying questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The solution should remain a logical, accurate, concise expression style and detail necessary step needed to reach the conclusion, formatted as follows: <|begin_of_solution|> {final formatted, precise, and clear solution} <|end_of_solution|> Now, try to solve the following question through the above guidelines:"""


def test_system_prompt_matches_method_md_byte_for_byte():
    assert formats.REASONING_SYSTEM_PROMPT == METHOD_SYSTEM
    assert "\\n\\n" in formats.REASONING_SYSTEM_PROMPT  # literal backslash-n kept
    assert "analisying" in formats.REASONING_SYSTEM_PROMPT and "backtracing" in formats.REASONING_SYSTEM_PROMPT


def test_reasoning_prompt_rendering_matches_reference():
    question = "Compute {x} if x = 2^{10}."
    expected = (
        "<|im_start|>system\n" + METHOD_SYSTEM + "<|im_end|>\n<|im_start|>user\n" + question
        + "<|im_end|>\n<|im_start|>assistant\n<|begin_of_thought|>\n\n"
    )
    assert formats.render_reasoning_prompt(question) == expected


def test_response_layout_and_split_roundtrip():
    think, solution = "Step 1.\n\nStep 2.", "So \\boxed{4}."
    response = formats.render_response(think, solution)
    assert response == "Step 1.\n\nStep 2.<|end_of_thought|>\n\n<|begin_of_solution|>So \\boxed{4}.<|end_of_solution|>"
    assert formats.split_response(response) == (think, solution)
    assert formats.split_response("no markers at all") is None
    assert formats.cut_at_end_of_thought("abc") == ("abc", False)
    assert formats.cut_at_end_of_thought(formats.ASSISTANT_PREFILL + "abc<|end_of_thought|>rest") == ("abc", True)


def test_posterior_templates_need_and_use_the_solution():
    for template in (formats.POSTERIOR_A, formats.POSTERIOR_B):
        prompt = template.render_prompt("Q?", "SOL-42")
        assert "SOL-42" in prompt and "Q?" in prompt
        assert prompt.endswith("<|im_start|>assistant\n<|begin_of_thought|>\n\n")
        try:
            template.render_prompt("Q?")
        except ValueError as exc:
            assert template.name in str(exc)
        else:
            raise AssertionError("a posterior template rendered without a solution")
    # A: hint in the user turn; B: solution in the system part, not the user turn
    a_system, a_user = formats.POSTERIOR_A.format_fields("Q?", "SOL-42")
    b_system, b_user = formats.POSTERIOR_B.format_fields("Q?", "SOL-42")
    assert "SOL-42" in a_user and "SOL-42" not in a_system
    assert "SOL-42" in b_system and "SOL-42" not in b_user
