"""Team chat: several members answer a question in rounds, each message streamed.

``step.py`` is the team's answer as a hub step (``TeamStep``, ``plan_team``);
``extension.py`` the ``/v1/team/stream`` route and the extension that installs both.
"""

from lmstream.team.step import DEFAULT_MEMBERS, MODERATOR, Member, Team, TeamStep, plan_team

__all__ = ["DEFAULT_MEMBERS", "MODERATOR", "Member", "Team", "TeamStep", "plan_team"]
