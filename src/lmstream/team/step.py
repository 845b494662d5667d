"""A team's answer as one step: several members answer in rounds, each one streamed.

``TeamStep`` is the answer of a team request (``plan_team`` puts it there when the
request carries a ``Team``). Each member's message is one model round on a request of
its own — the member's persona as the system prompt, the conversation so far, the
question and every earlier message of the discussion — on the member's model::

    MessageStart(speaker, round, model)  TextDelta*  MessageDone(speaker, round)
    ... for every member, for every round, then the moderator's summary (if any)

The rounds' content blocks are numbered one after another by the hub, so each message
is its own block; the conversation recorder keeps one assistant message per speaker.
Cancelling the generation stops the member who is speaking.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmstream.events import MessageDone, MessageStart
from lmstream.hub import Plan, Run
from lmstream.request import ChatRequest, Message

__all__ = ["DEFAULT_MEMBERS", "MODERATOR", "Member", "Team", "TeamStep", "plan_team"]


@dataclass(frozen=True, slots=True)
class Member:
    """One voice of the team: a name, a persona (its system prompt), a model (None: the
    request's)."""

    name: str
    persona: str
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Team:
    """Attached to a team request: who answers, how many rounds, how long each message."""

    question: str
    members: tuple[Member, ...]
    rounds: int = 1
    max_tokens: int | None = None
    moderator: Member | None = None


DEFAULT_MEMBERS = (
    Member("Optimist", "You see what could go right: opportunities, strengths, the best case worth aiming for."),
    Member("Skeptic", "You look for what could go wrong: risks, weak assumptions, missing evidence."),
    Member("Pragmatist", "You turn ideas into concrete next steps that are cheap to try and easy to check."),
)
MODERATOR = Member(
    "Moderator", "You are the moderator. Sum the discussion up in a few sentences: where the team agrees, where not."
)


def member_request(base: ChatRequest, team: Team, member: Member, said: list[tuple[str, str]]) -> ChatRequest:
    """What ``member`` is asked: its persona, the conversation so far, the question and
    the discussion up to now."""
    others = ", ".join(m.name for m in team.members if m.name != member.name)
    system = (
        f"You are {member.name}, one member of a team answering a question together"
        + (f" with {others}" if others else "")
        + f". {member.persona} Speak for yourself, briefly, without repeating the others."
    )
    earlier = [m for m in base.messages if m.role != "system"][:-1]  # the conversation before the question
    prompt = team.question
    if said:
        discussion = "\n\n".join(f"{speaker}: {text.strip()}" for speaker, text in said)
        prompt += f"\n\nThe discussion so far:\n\n{discussion}"
    prompt += f"\n\nYour turn, {member.name}."
    return base.with_(
        messages=(Message("system", system), *earlier, Message("user", prompt)),
        model=member.model or base.model,
        max_tokens=team.max_tokens or base.max_tokens,
        tools=(),
        server_tools=(),
        tool_choice=None,
    )


class TeamStep:
    def __init__(self, team: Team) -> None:
        self.team = team

    async def run(self, run: Run) -> None:
        team = self.team
        base = run.request
        said: list[tuple[str, str]] = []
        turns = [(r, m) for r in range(1, team.rounds + 1) for m in team.members]
        if team.moderator is not None:
            turns.append((team.rounds, team.moderator))
        for round_number, member in turns:
            request = member_request(base, team, member, said)
            run.emit(MessageStart(member.name, round_number, request.model))
            answer = await run.model_round(request)
            said.append((member.name, answer.text))
            run.emit(MessageDone(member.name, round_number))


async def plan_team(request: ChatRequest, plan: Plan) -> Plan:
    """A hub planner: a request carrying a ``Team`` is answered by its members in turn."""
    team = request.attachment(Team)
    if team is None:
        return plan
    return Plan(before=plan.before, answer=TeamStep(team), answer_opens_model=False)
