"""The keyhole service: running jobs ask it for forwarded ports (SPEC steps 6-10).

:meth:`KeyholeService.handle` takes the raw request body and returns the forwards or raises a
:class:`~runner.errors.RunnerError` whose public message and status the client sees. The order of checks
makes every refusal side-effect free: shape, job token, HMAC and window, the job's backoff after earlier
refusals (:mod:`runner.keyhole.refusals`), port count, job state and the job's nodes as Slurm reports them
(:mod:`runner.keyhole.allocation`) are all checked before anything is written; then one etcd transaction
decides whether this is the job's first request (:mod:`runner.keyhole.claims`). Only after that are ports
reserved (:mod:`runner.keyhole.ports`), the job's nodes resolved on the least-loaded healthy gateway and
checked against ``compute-networks``, the ports probed closed on every node, and the rule written
(:mod:`runner.gateway.pool`). Forwards always target Slurm's node names, never the request's. A refusal
after authentication counts toward the job's backoff and gives the job's one request back. Each step is saved
to etcd before the next, and ``fault`` hooks let tests stop the handler dead between steps, as a crash would.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from runner.config import Settings
from runner.errors import (
    ClusterUnavailable,
    GatewayUnavailable,
    JobNotRunning,
    NoSuchRunningJob,
    ReplayedRequest,
    RequestInProgress,
    RunnerError,
    SecondRequest,
    TooManyPorts,
    UnresolvableHost,
)
from runner.gateway.commands import REQUEST_PROBE_DEADLINE
from runner.gateway.pool import Gateway, GatewayPool
from runner.keyhole import protocol
from runner.keyhole.allocation import Allocation, SlurmQuery, check_requested_hosts, check_targets, confirmed_allocation
from runner.keyhole.claims import Claim, ClaimRecord, Claims, Outcome, answered
from runner.keyhole.ports import PortBook, PortRecord, forward_rule
from runner.keyhole.refusals import RefusalBackoff
from runner.records import Forward, JobRecord, JobState
from runner.state import StateStore

log = logging.getLogger(__name__)

Fault = Callable[[str], Awaitable[None]]
PROBE_ROUNDS = 4
GATEWAY_TRIES = 3
_ASKING_STATES = {JobState.SUBMITTED, JobState.RUNNING}


class KeyholeService:
    """Authenticates requests, reserves ports, places forwards; stateless apart from etcd."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        claims: Claims,
        ports: PortBook,
        pool: GatewayPool,
        *,
        scheduler: SlurmQuery,
        on_forwarded: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        window_seconds: int = protocol.DEFAULT_WINDOW_SECONDS,
        fault: Fault | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._claims = claims
        self.ports = ports
        self.pool = pool
        self._scheduler = scheduler
        self.refusals = RefusalBackoff(store.client, store.prefix, clock=clock)
        self._on_forwarded = on_forwarded
        self._clock = clock
        self._window = window_seconds
        self._fault = fault
        self.identity = uuid.uuid4().hex
        self.on_outcome: Callable[[BaseException | None], None] = lambda exc: None  # the runner's metrics

    async def _step(self, name: str) -> None:
        if self._fault is not None:
            await self._fault(name)

    async def handle(self, body: bytes) -> list[Forward]:
        """Answer one request; refusals are :class:`RunnerError` with a public message and a 4xx status."""
        try:
            forwards = await self._handle(body)
        except Exception as exc:
            self.on_outcome(exc)
            raise
        self.on_outcome(None)
        return forwards

    async def _handle(self, body: bytes) -> list[Forward]:
        request = protocol.parse_request(body)
        token = await self._store.get_token(request.job_id)
        if token is None:
            raise NoSuchRunningJob(internal=f"keyhole: no token for job {request.job_id}")
        protocol.verify_request(request, token, now=self._clock(), window_seconds=self._window)
        # Authentic from here on: refusals count toward the job's backoff, which is checked before any Slurm call.
        await self.refusals.check(request.job_id)
        try:
            job, allocation = await self._admit(request)
            signed = protocol.canonical_bytes(request.signed_fields()) + request.signature.encode()
            digest = hashlib.sha256(signed).hexdigest()
            claim = await self._claims.claim(request.job_id, request.nonce, digest, self.identity)
            return await self._decide(request, job, allocation, claim)
        except RunnerError as exc:
            if exc.status < 500 and not isinstance(exc, _NOT_COUNTED):
                await self.refusals.record(request.job_id)
            raise

    async def _admit(self, request: protocol.KeyholeRequest) -> tuple[JobRecord, Allocation]:
        """Port count, job state and the job's nodes as Slurm reports them; writes nothing."""
        limit = self._settings.keyholed_max_forwarders_per_job
        if request.ports > limit:
            raise TooManyPorts(f"the job asks for {request.ports} ports; at most {limit} are allowed")
        job = await self._store.get_job(request.job_id)
        if job is not None and job.state is JobState.AVAILABLE:
            raise SecondRequest(internal=f"job {request.job_id} is available: its forwards are in place")
        if job is None or job.state not in _ASKING_STATES:
            raise JobNotRunning(internal=f"job {request.job_id} is {job.state.value if job else 'unknown'}")
        allocation = await confirmed_allocation(job, self._scheduler)
        check_requested_hosts(request.hostnames, allocation)
        return job, allocation

    async def _decide(
        self, request: protocol.KeyholeRequest, job: JobRecord, allocation: Allocation, claim: Claim
    ) -> list[Forward]:
        job_id = request.job_id
        if claim.outcome is Outcome.ANSWERED and claim.record is not None:
            log.info("keyhole: job %s: retry of an answered request; same answer", job_id)
            return await self._answered(job_id, claim.record)
        if claim.outcome is Outcome.IN_PROGRESS:
            raise RequestInProgress(internal=f"job {job_id}")
        if claim.outcome is Outcome.SECOND_REQUEST:
            raise SecondRequest(internal=f"job {job_id}")
        if claim.outcome is Outcome.REPLAYED_NONCE or claim.record is None:
            raise ReplayedRequest(internal=f"job {job_id}: nonce {request.nonce}")
        try:
            return await self._forward(request, allocation, claim.record, takeover=claim.outcome is Outcome.TAKEOVER)
        except RunnerError as exc:
            log.warning("keyhole: job %s: giving up this attempt: %s", job_id, exc)
            self.pool.release(job_id)
            held = await self.ports.of_job(job_id)
            await self.ports.release(job_id, [r.port for r in held])
            await self._claims.abandon(job_id, request.nonce)
            raise

    async def _forward(
        self, request: protocol.KeyholeRequest, allocation: Allocation, claim: ClaimRecord, *, takeover: bool
    ) -> list[Forward]:
        job_id = request.job_id
        placed = [r for r in await self.ports.of_job(job_id) if r.forward is not None] if takeover else []
        if takeover and len(placed) == request.ports:
            gateway = self.pool.by_ip[placed[0].gateway_ssh_ip or ""]
            await self._install_missing(gateway, placed)
        else:
            if takeover:
                await self._release_all(job_id)
            placed, gateway = await self._place_and_install(request, allocation)
        await self._step("after-rule")
        forwards = [r.forward for r in placed if r.forward is not None]
        stored = await self._store.update_job(job_id, lambda rec: _with_forwards(rec, forwards))
        if stored is None or stored.state not in (*_ASKING_STATES, JobState.AVAILABLE):
            raise JobNotRunning(internal=f"job {job_id} ended while its forwards were set up")
        await self._claims.finish(job_id, claim, forwards)
        self._on_forwarded()
        log.info(
            "keyhole: job %s: forwarded %s via %s", job_id, [f.external_port for f in forwards], gateway.internal_ip
        )
        return forwards

    async def _answered(self, job_id: str, claim: ClaimRecord) -> list[Forward]:
        """The forwards of an answered request, as the job's record holds them (saved before the answer was).

        They must still be what the job was told; if they are not, the job has ended and lost them.
        """
        stored = await self._store.get_job(job_id)
        forwards = stored.forwards if stored is not None else []
        if answered(forwards) != claim.answer:
            raise JobNotRunning(internal=f"job {job_id}: its forwards changed after its request was answered")
        return forwards

    async def _install_missing(self, gateway: Gateway, placed: list[PortRecord]) -> None:
        present = {(r.job_id, r.external_port) for r in (await self.pool.current(gateway)).dnat}
        missing = [forward_rule(r) for r in placed if (r.job_id, r.port) not in present]
        if missing:
            await self.pool.edit(gateway, add=missing)

    async def _release_all(self, job_id: str) -> None:
        held = await self.ports.of_job(job_id)
        await self.ports.release(job_id, [r.port for r in held])

    async def _place_and_install(
        self, request: protocol.KeyholeRequest, allocation: Allocation
    ) -> tuple[list[PortRecord], Gateway]:
        """Place the forwards on a healthy gateway and write the rules there.

        A gateway found down at any step (it may have died after it was chosen) loses this job's reservations
        and choice, and the next least-loaded gateway is tried, so the job's one request still succeeds.
        """
        job_id = request.job_id
        suffix = self._settings.forwarding_hostname_suffix
        names = [node + suffix for node in allocation.nodes]  # Slurm's names, never the request's
        tried: list[Gateway] = []
        for _ in range(min(GATEWAY_TRIES, len(self.pool.gateways))):
            gateway = self.pool.choose(job_id, exclude=tried, weight=request.ports)
            try:
                placed = await self._place_on(request, gateway, names)
                await self._step("before-rule")
                await self.pool.install(gateway, [forward_rule(r) for r in placed])
            except GatewayUnavailable as exc:
                log.warning("keyhole: job %s: gateway %s down (%s); trying another", job_id, gateway.internal_ip, exc)
                self.pool.release(job_id)
                await self._release_all(job_id)
                tried.append(gateway)
                continue
            return placed, gateway
        raise ClusterUnavailable(internal=f"job {job_id}: no gateway could place the forward")

    async def _place_on(self, request: protocol.KeyholeRequest, gateway: Gateway, names: list[str]) -> list[PortRecord]:
        addresses = await self.pool.resolve(gateway, names)
        missing = [n for n in names if n not in addresses]
        if missing:
            raise UnresolvableHost(f"cannot resolve {', '.join(missing)} on the gateway")
        check_targets(addresses, self._settings.compute_networks)
        ips = [addresses[n] for n in names]
        job_id = request.job_id
        ports: list[int] = []
        rejected: set[int] = set()
        static = self._settings.debug.keyholed_static_forwarding is not None
        for _ in range(PROBE_ROUNDS):
            ports += await self.ports.reserve(job_id, request.ports - len(ports), avoid=rejected)
            if static:
                break
            # one bounded command per gateway: every node probed in parallel, all of it within the deadline
            targets = [(ip, p) for ip in ips for p in ports]
            open_now = await self.pool.probe(gateway, targets, deadline=REQUEST_PROBE_DEADLINE)
            busy = sorted({p for _, p in open_now})
            if not busy:
                break
            log.info("keyhole: job %s: ports %s in use on a host; picking others", job_id, busy)
            await self.ports.release(job_id, busy)
            rejected |= set(busy)
            ports = [p for p in ports if p not in busy]
        else:
            raise ClusterUnavailable(internal=f"job {job_id}: no port closed on all hosts after {PROBE_ROUNDS} rounds")
        records = [
            PortRecord(
                job_id=job_id,
                port=p,
                forward=Forward(
                    internal_port=p,
                    external_port=p,
                    external_ip=gateway.external_ip,
                    gateway_ssh_ip=gateway.internal_ip,
                    internal_ip=ips[0],
                ),
                reserved_at=time.time(),
            )
            for p in ports
        ]
        for record in records:
            await self.ports.place(record)
        return records


# Refusals of a job's own retries, not of anything it asked for: they never slow the job down.
_NOT_COUNTED = (RequestInProgress,)


def _with_forwards(record: JobRecord, forwards: list[Forward]) -> JobRecord | None:
    if record.state not in _ASKING_STATES:
        return None
    record.forwards = forwards
    return record
