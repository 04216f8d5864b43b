"""``gallring demo``: a day of events posted to a running Gallring, and what became of them.

It registers two recipients whose webhooks go to a local endpoint (``vendor_endpoint``), posts
the day's events (``day``) over the API as an upstream system would, shows each subject's
retention clocks, then waits while the purger erases what fell due and the notifier tells the
recipients, who verify and confirm. Recipients are deactivated at the end, so that nothing is
sent to the endpoint once it is gone.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from aiohttp import ClientConnectionError, ClientError, ClientResponse, ClientSession, ClientTimeout

from services.cli.collection_system import SYSTEM_ID as COLLECTION_SYSTEM_ID
from services.cli.collection_system import CollectionSystem
from services.cli.demo import collection_rows
from services.cli.demo.day import RECIPIENTS, Person, a_day
from services.cli.demo.vendor_endpoint import Told, VendorEndpoint


class DemoFailed(Exception):
    """Something the newcomer must fix first; the message says what."""


#: Each call's own limit: the demo's --timeout bounds the whole wait, not a hung request.
REQUEST_TIMEOUT = ClientTimeout(total=10)


async def check_reachable(api_url: str) -> None:
    """Before anything is made for the demo: is a Gallring API there, and ready?"""
    async with ClientSession(timeout=REQUEST_TIMEOUT) as session:
        try:
            async with session.get(f"{api_url.rstrip('/')}/readyz") as answer:
                if answer.status != 200:
                    raise DemoFailed(f"the API at {api_url} is not ready: {await answer.text()}")
        except ClientConnectionError:
            raise DemoFailed(
                f"nothing answers at {api_url}: start Gallring first (`make run` in another "
                "terminal), or name its API with --api"
            ) from None


async def walk_through(
    api_url: str,
    api_key: str,
    out: TextIO,
    *,
    timeout: float,
    collection: CollectionSystem | None = None,
) -> int:
    """``collection``: the sample collection system of ``gallring up``, when it is there."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with ClientSession(
        base_url=api_url.rstrip("/") + "/", headers=headers, timeout=REQUEST_TIMEOUT
    ) as api:
        await _check_key(api, api_url)
        return await Walkthrough(api, api_url, out, timeout, collection).run()


class Walkthrough:
    """One run of the demo, told as it happens, with seconds since its start."""

    def __init__(
        self,
        api: ClientSession,
        api_url: str,
        out: TextIO,
        timeout: float,
        collection: CollectionSystem | None,
    ) -> None:
        self.api = api
        self.api_url = api_url.rstrip("/")
        self.out = out
        self.started = time.monotonic()
        self.timeout = timeout
        self.endpoint = VendorEndpoint(self._told)
        self.tolds: list[Told] = []
        self.people: list[Person] = []
        self.erased: dict[str, set[str]] = {}  # label -> categories whose erasure was seen
        self.collection = collection
        self.collection_db = collection.engine() if collection else None
        # The erasures the collection system's agent is to confirm: erasure id -> its person;
        # and those it has confirmed.
        self.owed_by_collection: dict[str, Person] = {}
        self.confirmed_by_collection: set[str] = set()
        # Webhooks that arrive while the clocks are still being shown are told after them,
        # under "Waiting for…", where a reader looks for them; None once that is printed.
        self.held_webhook_lines: list[str] | None = []

    async def run(self) -> int:
        await self.endpoint.start()
        try:
            await _register_recipients(self.api, self.endpoint, self._say)
            self.people = a_day(datetime.now(UTC))
            self.erased = {person.label: set() for person in self.people}
            self._show_collection_system()
            await self._post_the_day()
            await self._show_clocks()
            await self._wait_for_erasures_and_webhooks()
        finally:
            await _deactivate_recipients(self.api)
            await self.endpoint.stop()
            if self.collection_db is not None:
                self.collection_db.dispose()
        return self._summary()

    def _show_collection_system(self) -> None:
        """The day's debtors and reader written into the company's collection system, as its
        own staff would have entered them; what its agent will erase."""
        if self.collection is None or self.collection_db is None:
            return
        collection_rows.write_people(self.collection_db, self.people, datetime.now(UTC))
        self._say(
            f"\nThe company's collection system ({self.collection.database}), its rows of "
            "them (its agent erases them when told):"
        )
        for person in self.people:
            if person.case_id is not None:
                rows = collection_rows.case_rows(self.collection_db, person.case_id)
                self._say(f"  {person.label:10} case {person.case_id}: {rows}")
            if person.crm_id is not None:
                self._say(f"  {person.label:10} on the newsletter list as CRM {person.crm_id}")

    async def _post_the_day(self) -> None:
        self._say("\nThe day's events, POST /v1/events (back-dated where the story is old):")
        for person in self.people:
            for event in person.events:
                await _call(self.api, "POST", "v1/events", event)
                if event["type"] == "legal_hold.placed":
                    await self._until_read(person, 1)
            self._say(f"  {person.label:10} {person.story}")

    async def _until_read(self, person: Person, events: int) -> None:
        """Until the purger has applied the person's first ``events`` (or the demo runs late):
        a hold must be in place before the back-dated closure that makes its case due."""
        while not self._late():
            if (await _lookup(self.api, person))["events"] >= events:
                return
            await asyncio.sleep(0.1)

    async def _show_clocks(self) -> None:
        """Each subject's clocks once the purger has read their events from Kafka (or erased
        them already: an unsubscribe is erased as soon as it is read)."""
        self._say("\nTheir retention clocks (POST /v1/subjects/lookup), as the purger keeps them:")
        told_to_wait = False
        for person in self.people:
            while True:
                looked_up = await _lookup(self.api, person)
                read = looked_up["events"] >= len(person.events) or looked_up["erasures"]
                if read or self._late():
                    break
                if not told_to_wait and time.monotonic() - self.started > 5:
                    told_to_wait = True
                    self._say("  (waiting for the purger to read the events from Kafka…)")
                await asyncio.sleep(0.5)
            for clock in looked_up["clocks"]:
                self._say(f"  {person.label:10} {_describe(clock)}")
            self._note_erasures(person, looked_up["erasures"])

    async def _wait_for_erasures_and_webhooks(self) -> None:
        self._say(
            "\nWaiting for the purger's sweep to erase what is due, and for the notifier to tell "
            "the recipients who had the data:"
        )
        for line in self.held_webhook_lines or []:
            self._say(line)
        self.held_webhook_lines = None
        while not self._late():
            for person in self.people:
                if self._still_due(person):
                    self._note_erasures(person, (await _lookup(self.api, person))["erasures"])
            await self._note_collection_confirmations()
            if self._complete():
                return
            await asyncio.sleep(0.5)

    def _note_erasures(self, person: Person, erasures: list[dict[str, Any]]) -> None:
        for erasure in erasures:
            if erasure["category"] not in self.erased[person.label]:
                self.erased[person.label].add(erasure["category"])
                self._say(
                    f"  {self._clock()}  {person.label:10} erased: {erasure['category']} "
                    f"(erasure {erasure['erasure_id']}, rule {erasure['rule']})"
                )
                if self.collection is not None and _held_by_collection(person, erasure):
                    self.owed_by_collection[erasure["erasure_id"]] = person

    async def _note_collection_confirmations(self) -> None:
        """The erasures the collection system's agent has confirmed since last asked, with
        what is left of the person's rows there."""
        for erasure_id, person in self.owed_by_collection.items():
            if erasure_id in self.confirmed_by_collection:
                continue
            view = await _call(self.api, "GET", f"v1/erasures/{erasure_id}")
            if view is None or COLLECTION_SYSTEM_ID not in view["confirmed_by"]:
                continue
            self.confirmed_by_collection.add(erasure_id)
            assert self.collection_db is not None
            if view["category"] == "marketing" and person.crm_id is not None:
                left = (
                    "still on the newsletter list"
                    if collection_rows.subscribed(self.collection_db, person.crm_id)
                    else "off the newsletter list"
                )
            else:
                assert person.case_id is not None
                rows = collection_rows.case_rows(self.collection_db, person.case_id)
                left = (
                    f"case {person.case_id}: {rows} (the payment stays in the books, without "
                    "the case or the payer's name)"
                )
            self._say(
                f"  {self._clock()}  {person.label:10} the collection system's agent erased "
                f"and confirmed (erasure {view['state']}): {left}"
            )

    def _summary(self) -> int:
        erasures = sum(len(categories) for categories in self.erased.values())
        ours = [t for t in self.tolds if t.payload["data"]["recipient_ref"] in self._references()]
        self._say(
            f"\nIn {time.monotonic() - self.started:.0f} s: {erasures} erasures executed, "
            f"{len(ours)} deletion webhooks verified by their recipients, "
            f"{sum(t.confirmed for t in ours)} confirmed; the held and pending clocks wait for "
            "their time."
        )
        self._say(
            f"See it all in the API: {self.api_url}/docs (Authorize with the key above), e.g. "
            "GET /v1/erasures?state=executed and GET /v1/notifications."
        )
        if self.endpoint.refused:
            self._say(
                f"{self.endpoint.refused} webhooks did not verify with the recipients' secrets "
                "(sent under an earlier demo's secret?)."
            )
        if self.collection is not None and self.collection_db is not None:
            self._say(
                f"The collection system's agent erased its rows and confirmed "
                f"{len(self.confirmed_by_collection)} of {len(self.owed_by_collection)} "
                "erasures it owed (GET /v1/erasures?system=collection lists what it still owes); "
                "the cases not due are untouched:"
            )
            for person in self.people:
                if person.case_id is not None and "collection_case" not in person.due_now:
                    rows = collection_rows.case_rows(self.collection_db, person.case_id)
                    self._say(f"  {person.label:10} case {person.case_id}: {rows}")
        if any(not t.confirmed for t in ours):
            self._say(
                "A recipient's confirmation did not reach the API: the notifier's "
                "GALLRING_NOTIFIER_PUBLIC_API_URL must be where this API answers."
            )
            return 1
        if not self._complete():
            self._say(
                f"Not everything happened within {self.timeout:.0f} s: are the purger, the "
                "notifier and the agent running (`gallring up` starts them)? Their output says "
                "why."
            )
            return 1
        return 0

    def _references(self) -> set[str]:
        return set().union(*(_references_to_tell(person) for person in self.people))

    async def _told(self, told: Told) -> None:
        data = told.payload["data"]
        scope = _scope_text(data["scope"])
        outcome = "confirmed" if told.confirmed else f"confirming at {data['confirm_url']} failed"
        if data["recipient_ref"] not in self._references():
            outcome += " (an earlier demo's, sent now that the recipient is active again)"
        line = (
            f"  {self._clock()}  {told.recipient_id} verified a signed deletion webhook: erase "
            f"{data['category']} ({scope}; their ref {data['recipient_ref']}); {outcome}"
        )
        if self.held_webhook_lines is None:
            self._say(line)
        else:
            self.held_webhook_lines.append(line)
        self.tolds.append(told)

    def _still_due(self, person: Person) -> bool:
        return not set(person.due_now) <= self.erased[person.label]

    def _complete(self) -> bool:
        # A failed confirmation is not tried again: the webhook was answered, and is done.
        told = {t.payload["data"]["recipient_ref"] for t in self.tolds}
        still_due = any(self._still_due(person) for person in self.people)
        owed = set(self.owed_by_collection) - self.confirmed_by_collection
        return not still_due and not owed and self._references() <= told

    def _late(self) -> bool:
        return time.monotonic() > self.started + self.timeout

    def _clock(self) -> str:
        return f"+{time.monotonic() - self.started:4.1f}s"

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


async def _check_key(api: ClientSession, api_url: str) -> None:
    async with api.get("v1/recipients") as answer:
        if answer.status in (401, 403):
            raise DemoFailed(
                f"the API at {api_url} refused the demo's key ({answer.status}): give an "
                "admin key with --api-key, or run the demo where `gallring up` runs"
            )


async def _register_recipients(
    api: ClientSession, endpoint: VendorEndpoint, say: Callable[[str], None]
) -> None:
    """Registered once; a later run points them at this run's endpoint and takes a new
    signing secret (the old one, sealed in Gallring's database, is not to be read back)."""
    say(f"Recipients, their webhooks on this machine ({endpoint.url('…')}):")
    for recipient in RECIPIENTS:
        url = endpoint.url(recipient.recipient_id)
        created = await _call(
            api,
            "POST",
            "v1/recipients",
            {
                "recipient_id": recipient.recipient_id,
                "name": recipient.name,
                "kind": "processor",
                "country": recipient.country,
                "webhook_url": url,
                "categories": list(recipient.categories),
            },
            allow=(409,),
        )
        if created is None:  # a new secret first: a webhook sent once it is active verifies
            path = f"v1/recipients/{recipient.recipient_id}"
            created = await _call(api, "POST", f"{path}/secret-rotations", {"grace_hours": 0})
            assert created is not None
            endpoint.secrets[recipient.recipient_id] = created["signing_secret"]
            await _call(api, "PATCH", path, {"webhook_url": url, "active": True})
        else:
            endpoint.secrets[recipient.recipient_id] = created["signing_secret"]
        say(f"  {recipient.recipient_id:26} {recipient.name}, {recipient.country}")


async def _deactivate_recipients(api: ClientSession) -> None:
    """Best effort, on the way out: its failure must not hide why the demo ended."""
    for recipient in RECIPIENTS:
        path = f"v1/recipients/{recipient.recipient_id}"
        with contextlib.suppress(ClientError, TimeoutError, DemoFailed):
            await _call(api, "PATCH", path, {"active": False}, allow=(404,))


async def _lookup(api: ClientSession, person: Person) -> dict[str, Any]:
    answer = await _call(api, "POST", "v1/subjects/lookup", person.subject)
    assert answer is not None
    return answer


def _held_by_collection(person: Person, erasure: dict[str, Any]) -> bool:
    """Whether the sample collection system holds the data of this erasure."""
    if erasure["category"] == "marketing":
        return person.crm_id is not None
    return erasure["category"] == "collection_case" and person.case_id is not None


def _describe(clock: dict[str, Any]) -> str:
    scope = _scope_text(clock["scope"]) or "whole subject"
    state = clock["state"]
    if state == "pending" and clock["due_at"]:
        state = f"pending until {clock['due_at'][:10]}"
    return f"{clock['category']:22} {scope:26} {state:28} {clock['rule']}"


def _scope_text(scope: dict[str, str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in scope.items())


def _references_to_tell(person: Person) -> set[str]:
    """The recipients' references of the person's data that is erased now: each recipient must
    be told (GDPR art. 19). Unique to the run, they tell its webhooks from an earlier run's."""
    return {
        event["data"]["recipient_ref"]
        for event in person.events
        if event["type"] == "data.disclosed" and event["data"]["category"] in person.due_now
    }


async def _call(
    api: ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    allow: tuple[int, ...] = (),
) -> dict[str, Any] | None:
    """One API call; None for an ``allow``-ed error status, ``DemoFailed`` with the API's own
    problem detail for any other."""
    async with api.request(method, path, json=body) as answer:
        if answer.status in allow:
            return None
        if answer.status >= 400:
            raise DemoFailed(f"{method} /{path} answered {answer.status}: {await _problem(answer)}")
        return await answer.json()


async def _problem(answer: ClientResponse) -> str:
    """A problem+json answer's detail and each field's message; any other body as text."""
    try:
        problem = await answer.json(content_type=None)
    except ValueError:
        return (await answer.text())[:200]
    if not isinstance(problem, dict):
        return str(problem)[:200]
    fields = [f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors", [])]
    return "; ".join([str(problem.get("detail", problem)), *fields])
