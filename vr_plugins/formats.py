"""Every prompt format and marker string of the project, defined once.

The trainer adapter, the sampler, the scorer, the dataset builder and the evaluation model config all
import from here, so a format can never drift between training and inference. The reasoning system
prompt is an interoperability constant: the released checkpoints were trained on this exact string
(typos "analisying" and "backtracing" included; the ``\\n\\n`` inside "separated with '\\n\\n'" is a
literal backslash-n pair, not two newlines). See docs/method.md section 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- marker strings -----------------------------------------------------------------------------
BEGIN_OF_THOUGHT = "<|begin_of_thought|>"
END_OF_THOUGHT = "<|end_of_thought|>"
BEGIN_OF_SOLUTION = "<|begin_of_solution|>"
END_OF_SOLUTION = "<|end_of_solution|>"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

#: What the assistant turn starts with (prefilled at inference, part of the prompt at training).
ASSISTANT_PREFILL = BEGIN_OF_THOUGHT + "\n\n"
#: What joins the thinking trace and the solution in a response.
THOUGHT_TO_SOLUTION = END_OF_THOUGHT + "\n\n" + BEGIN_OF_SOLUTION
#: The stop string of rollouts and evaluation.
STOP_STRING = END_OF_SOLUTION

REASONING_SYSTEM_PROMPT = (
    "Your role as an assistant involves thoroughly exploring questions through a systematic long "
    "thinking process before providing the final precise and accurate solutions. This requires "
    "engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, "
    "backtracing, and iteration to develop well-considered thinking process. Please structure your "
    "response into two main sections: Thought and Solution. In the Thought section, detail your "
    "reasoning process using the specified format: <|begin_of_thought|> {thought with steps separated "
    "with '\\n\\n'} <|end_of_thought|> Each step should include detailed considerations such as "
    "analisying questions, summarizing relevant findings, brainstorming new ideas, verifying the "
    "accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution "
    "section, based on various attempts, explorations, and reflections from the Thought section, "
    "systematically present the final solution that you deem correct. The solution should remain a "
    "logical, accurate, concise expression style and detail necessary step needed to reach the "
    "conclusion, formatted as follows: <|begin_of_solution|> {final formatted, precise, and clear "
    "solution} <|end_of_solution|> Now, try to solve the following question through the above "
    "guidelines:"
)

POSTERIOR_A_SYSTEM_PROMPT = REASONING_SYSTEM_PROMPT
POSTERIOR_A_USER = (
    "{question}\n\n"
    "Hint: a correct final solution to this question is given below. Use it only as a guide; your "
    "thought process must reason its way to it on its own.\n\n"
    + BEGIN_OF_SOLUTION + "{solution}" + END_OF_SOLUTION
)

POSTERIOR_B_SYSTEM_PROMPT = (
    "You are given a question and the final solution that answers it. Write the long, careful "
    "thinking process that a strong reasoner would go through to reach exactly this solution: explore, "
    "check intermediate steps, reflect and correct mistakes, as if you had not seen the solution. Do not "
    "quote or mention the solution in the thinking process. Write the thinking process between "
    "<|begin_of_thought|> and <|end_of_thought|>.\n\n"
    "Final solution:\n" + BEGIN_OF_SOLUTION + "{solution}" + END_OF_SOLUTION
)


@dataclass(frozen=True)
class Template:
    """A ChatML prompt layout: system text, user text and the assistant prefill.

    ``system`` and ``user`` are ``str.format`` patterns over ``{question}`` and (posterior templates
    only) ``{solution}``. Hosts that build prompts from messages use :meth:`messages`; code that needs the
    exact text (scoring, sampling, byte-for-byte tests) uses :meth:`render_prompt`.
    """

    name: str
    system: str
    user: str
    assistant_prefix: str = ASSISTANT_PREFILL
    description: str = ""
    needs_solution: bool = field(default=False)

    def format_fields(self, question: str, solution: str | None = None) -> tuple[str, str]:
        if self.needs_solution and solution is None:
            raise ValueError(f"template {self.name!r} needs the reference solution (a posterior template)")
        values = {"question": question, "solution": solution or ""}
        # Formatting with str.replace (not str.format) so braces in questions are left alone.
        system, user = self.system, self.user
        for key, value in values.items():
            system = system.replace("{" + key + "}", value)
            user = user.replace("{" + key + "}", value)
        return system, user

    def messages(self, question: str, solution: str | None = None) -> list[dict[str, str]]:
        system, user = self.format_fields(question, solution)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def render_prompt(self, question: str, solution: str | None = None) -> str:
        """The full ChatML prompt, ending with the assistant prefill (what the model continues)."""
        system, user = self.format_fields(question, solution)
        return (
            f"{IM_START}system\n{system}{IM_END}\n"
            f"{IM_START}user\n{user}{IM_END}\n"
            f"{IM_START}assistant\n{self.assistant_prefix}"
        )


REASONING = Template(
    name="vr_reasoning",
    system=REASONING_SYSTEM_PROMPT,
    user="{question}",
    description="Sky-T1 / Bespoke-Stratos reasoning prompt (pi_0, pi_theta, rollouts, evaluation).",
)
POSTERIOR_A = Template(
    name="vr_posterior_a",
    system=POSTERIOR_A_SYSTEM_PROMPT,
    user=POSTERIOR_A_USER,
    description="Posterior q(z|x,y') template A: the reference solution is a hint in the user turn.",
    needs_solution=True,
)
POSTERIOR_B = Template(
    name="vr_posterior_b",
    system=POSTERIOR_B_SYSTEM_PROMPT,
    user="{question}",
    description="Posterior q(z|x,y') template B: the solution sits in the instruction; asks for the "
    "thinking that leads to it.",
    needs_solution=True,
)
BUILTIN_TEMPLATES = (REASONING, POSTERIOR_A, POSTERIOR_B)
#: Short names accepted on the command line (``--template a``).
POSTERIOR_SHORT_NAMES = {"a": POSTERIOR_A.name, "b": POSTERIOR_B.name}


def render_reasoning_prompt(question: str) -> str:
    return REASONING.render_prompt(question)


def render_response(think: str, solution: str) -> str:
    """Reference response layout: ``{think}<|end_of_thought|>\\n\\n<|begin_of_solution|>{solution}<|end_of_solution|>``."""
    return f"{think}{THOUGHT_TO_SOLUTION}{solution}{END_OF_SOLUTION}"


def answer_suffix(solution: str) -> str:
    """The answer span scored by the prior: marker, solution block, stop string (docs/method.md, step 4)."""
    return f"{THOUGHT_TO_SOLUTION}{solution}{END_OF_SOLUTION}"


def cut_at_end_of_thought(text: str) -> tuple[str, bool]:
    """Return the trace before the end-of-thought marker and whether the marker was found.

    A posterior generation may also start with the begin marker (when the model repeats it); that
    prefix is dropped so the trace is exactly the part after the prefill.
    """
    if text.startswith(ASSISTANT_PREFILL):
        text = text[len(ASSISTANT_PREFILL):]
    idx = text.find(END_OF_THOUGHT)
    if idx < 0:
        return text, False
    return text[:idx], True


def split_response(text: str) -> tuple[str, str] | None:
    """Split a response into raw (think, solution) pieces; None when the layout is not respected.

    Nothing is stripped: callers that normalise whitespace (``prepare``) decide that themselves.
    """
    think, found = cut_at_end_of_thought(text)
    if not found:
        return None
    rest = text[text.find(END_OF_THOUGHT) + len(END_OF_THOUGHT):]
    start = rest.find(BEGIN_OF_SOLUTION)
    if start < 0:
        return None
    solution = rest[start + len(BEGIN_OF_SOLUTION):]
    end = solution.rfind(END_OF_SOLUTION)
    if end >= 0:
        solution = solution[:end]
    return think, solution
