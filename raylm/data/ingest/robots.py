"""robots.txt policy for one host (RFC 9309 status rules, urllib.robotparser for the rules).

Status handling follows RFC 9309 section 2.3.1: a 2xx body is parsed; 4xx (no file) allows
everything; 5xx, 429 and network failures mean "unreachable", which disallows everything
for the rest of the round (the next round asks again). Crawl-delay is the one for our
user agent, else for "*".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.robotparser import RobotFileParser


@dataclass
class RobotsPolicy:
    parser: RobotFileParser | None  # None: no rules (allow all) or unreachable (see `unreachable`)
    agent: str                      # product token matched against User-agent lines
    unreachable: bool = False       # robots.txt could not be read: everything disallowed
    delays: dict[str, float] | None = None  # Crawl-delay per User-agent line (lowercased)

    def allowed(self, url: str) -> bool:
        if self.unreachable:
            return False
        return self.parser is None or self.parser.can_fetch(self.agent, url)

    def crawl_delay(self) -> float | None:
        """Seconds between requests asked for by the site, or None."""
        if self.parser is None:
            return None
        # urllib.robotparser reads integer delays only; "Crawl-delay: 0.5" is common, so parse it here.
        me = self.agent.lower()
        delays = self.delays or {}
        d = next((v for a, v in delays.items() if a != "*" and a in me), delays.get("*"))
        if d is None:
            rate = self.parser.request_rate(self.agent)  # "Request-rate: 1/5" = 1 request per 5 s
            return rate.seconds / rate.requests if rate and rate.requests else None
        return d


def product_token(user_agent: str) -> str:
    """'raylm-bot/0.1 (+https://x)' -> 'raylm-bot': what robots.txt User-agent lines name."""
    return user_agent.split("/", 1)[0].split(" ", 1)[0].strip() or "*"


def policy_from_response(status: int | None, text: str | None, user_agent: str) -> RobotsPolicy:
    """Policy from a robots.txt fetch; status None means the fetch failed (timeout, refused)."""
    agent = product_token(user_agent)
    if status is None or status == 429 or status >= 500:
        return RobotsPolicy(None, agent, unreachable=True)
    if not 200 <= status < 300 or not text:
        return RobotsPolicy(None, agent)
    rp = RobotFileParser()
    rp.parse(text.splitlines())  # also marks it as read, so can_fetch stops answering False
    return RobotsPolicy(rp, agent, delays=_crawl_delays(text))


def _crawl_delays(text: str) -> dict[str, float]:
    """User-agent (lowercased) -> Crawl-delay seconds, grouping lines as robots.txt does."""
    out: dict[str, float] = {}
    group: list[str] = []
    in_agents = False
    for line in text.splitlines():
        key, _, value = line.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if not in_agents:
                group = []
            group.append(value.lower())
            in_agents = True
        elif key:
            in_agents = False
            if key == "crawl-delay":
                try:
                    d = float(value)
                except ValueError:
                    continue
                if d >= 0:
                    for a in group:
                        out.setdefault(a, d)
    return out
