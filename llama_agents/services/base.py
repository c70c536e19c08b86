"""What every service shares: a name and a description, its own message type (its queue),
registration with the queue and the control plane, serving an HTTP API, and publishing results.

Which HTTP API is served is not decided here: see `BaseService.app_factory`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from fastapi import FastAPI
from llama_index.core.llms import ChatMessage

from llama_agents import tracing
from llama_agents._auth import auth_headers, configured_api_key
from llama_agents._retry import with_backoff
from llama_agents._serving import HttpServer
from llama_agents._settings import env_float, env_str
from llama_agents.errors import (
    ConfigurationError,
    ConsumerNotFoundError,
    ControlPlaneError,
    ControlPlaneUnavailableError,
    NonRetryableMessageError,
    UnauthorizedError,
    UnroutableMessageError,
)
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_consumers.remote import RemoteMessageConsumer
from llama_agents.message_queues.base import CONTROL_PLANE_MESSAGE_TYPE, BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
    validate_routing_key,
)
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER, utc_now
from llama_agents.messages.expiry import expires_at, is_expired
from llama_agents.messages.runs import RunBounce, RunCancel, RunInput
from llama_agents.metrics import ServiceMetrics, metrics_open

logger = logging.getLogger("llama_agents.services")

#: Steps published less than this long before a replica listened for cancels are run; older
#: ones go back to the control plane first (a cancel sent meanwhile could have been missed).
#: It also absorbs small clock differences between hosts.
STALE_GRACE = timedelta(seconds=1)

#: How many cancelled task ids a replica remembers (to skip their queued steps).
_CANCELLED_KEPT = 10_000


def failed_result(task: TaskDefinition, error: str, **fields: Any) -> TaskResult:
    """The result of a step that failed: no answer, the reason in `error`."""
    return TaskResult(task_id=task.task_id, step_id=task.step_id, result="", error=error, **fields)


class BaseService(ABC):
    """A long-running worker that consumes the messages sent to `service_name`.

    Args:
        message_queue: the fabric it consumes from and publishes to.
        service_name: its name, which is also its message type and queue.
        description: what it is good for (an orchestrating LLM reads this).
        prompt: optional chat messages describing how to use it.
        host, port: where it is served (`launch_server`).
        max_concurrent_tasks: messages it handles at once (its consumer's prefetch).
        step_timeout: seconds a step may take before the control plane fails its task
            (None: the control plane's default).

    Besides its queue, every replica listens at its own address (`control_address`) for
    events sent into the runs it holds, and on its service's broadcast key for cancels.
    """

    #: What kind of service this is, in its definition (the monitor uses it).
    service_kind = "service"
    #: Builds the HTTP API `launch_server` serves. The HTTP face (`services/app.py`) knows a
    #: service only by the little it needs (a Protocol), and this module does not know the
    #: face: the `llama_agents.services` package, always loaded before this module, sets it
    #: to `create_service_app`. A subclass may set its own to serve another API.
    app_factory: ClassVar[Callable[[BaseService], FastAPI]]

    def __init__(
        self,
        message_queue: BaseMessageQueue,
        service_name: str,
        description: str,
        *,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
        step_timeout: float | None = None,
    ) -> None:
        if max_concurrent_tasks < 1:
            raise ConfigurationError(
                f"max_concurrent_tasks must be at least 1, got {max_concurrent_tasks}"
            )
        self.message_queue = message_queue
        self.service_name = validate_routing_key(service_name)
        self.description = description
        self.prompt = prompt or []
        self.host = host or env_str("SERVICE_HOST", "127.0.0.1")
        self.port = port
        #: The host others reach this service at, when it differs from the bind address
        #: (a container binding 0.0.0.0 is reached by its name).
        self.public_host: str | None = env_str("SERVICE_PUBLIC_HOST", "") or None
        #: The system's API key (`LLAMA_AGENTS_API_KEY`): asked for by this service's HTTP
        #: API, sent to the control plane.
        self.api_key = configured_api_key()
        self.max_concurrent_tasks = max_concurrent_tasks
        self._consumer: BaseMessageQueueConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._http: HttpServer | None = None
        self._app: FastAPI | None = None
        self._serving = asyncio.Event()
        self.counters = {"received": 0, "succeeded": 0, "failed": 0, "in_flight": 0}
        #: Its Prometheus metrics (`GET /metrics`, with its message queue's).
        self.metrics = ServiceMetrics(self.service_name)
        #: Whether `/metrics` answers without the API key (`LLAMA_AGENTS_METRICS_OPEN`).
        self.metrics_open = metrics_open()
        self.step_timeout = step_timeout
        #: This replica's id: its control address and its run updates name it.
        self.replica_id = uuid.uuid4().hex[:12]
        self._control_consumer: BaseMessageQueueConsumer | None = None
        self._listening_since: datetime | None = None
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._control_plane_url: str | None = None

    @property
    def service_definition(self) -> ServiceDefinition:
        """What this service tells the control plane about itself."""
        return ServiceDefinition(
            service_name=self.service_name,
            description=self.description,
            prompt=self.prompt,
            host=self.public_host or self.host,
            port=self.port,
            kind=self.service_kind,
            step_timeout=self.step_timeout,
        )

    @property
    def publisher_id(self) -> str:
        return self.service_name

    @property
    def control_address(self) -> str:
        """Where the control plane reaches this replica (not its service): runs' inputs."""
        return f"{self.service_name}.replica.{self.replica_id}"

    @property
    def broadcast_key(self) -> str:
        """Where the control plane reaches every replica of this service: cancels."""
        return f"{self.service_name}.broadcast"

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """Handle one message sent to this service; raise to have it retried.

        The default handles NEW_TASK: run the step (`handle_step`, which calls `run_task`)
        and send its result to the control plane, or, when the message names a `reply_to` (a
        caller using this service as a tool), to that caller with the same correlation id.
        A call whose caller gave up (past its expiry) is acknowledged without running; a
        reply whose caller is gone is dropped. A control-plane step of a task this replica
        knows was cancelled is skipped; one that was redelivered, or that waited in the queue
        from before this replica listened for cancels, is handed back to the control plane,
        which sends it again only if its task still wants it. Services that take other
        messages override this.
        """
        if message.action is not ActionTypes.NEW_TASK:
            raise self._unsupported(message)
        task = TaskDefinition.from_data(message.data)
        what = f"task {task.task_id} (step {task.step_id})"
        if self._expired(message, what):
            return
        if message.reply_to is None and message.publisher_id == CONTROL_PLANE_PUBLISHER:
            if task.task_id in self._cancelled:
                logger.info("%s: %s was cancelled; skipped", self.service_name, what)
                return
            reason = self._handback_reason(message)
            if reason is not None and task.step_id is not None:
                await self._hand_back(task, reason)
                return
        await self.handle_step(message, task)

    async def handle_step(self, message: QueueMessage, task: TaskDefinition) -> None:
        """Run one step (`run_task`) and answer it; a step that raised is a failed step."""
        try:
            result = await self.run_task(task)
        except Exception as exc:
            # A step that raised is a failed step, reported to whoever asked: retrying the
            # message would only run it again (a crash mid-step is what redelivery is for).
            logger.warning("%s failed on task %s: %s", self.service_name, task.task_id, exc)
            result = failed_result(task, f"{type(exc).__name__}: {exc}")
        await self.send_result(message, result)

    async def send_result(self, message: QueueMessage, result: TaskResult) -> None:
        """Send `result` for the step `message` carried: to the control plane, or the caller.

        The result names the step it answers (stamped here when the service did not), so a
        late or repeated result can never be taken for another step's.
        """
        task = TaskDefinition.from_data(message.data)
        if result.step_id is None:
            result.step_id = task.step_id
        self.metrics.answered(failed=result.error is not None)
        answer = QueueMessage(
            type=message.reply_to or CONTROL_PLANE_MESSAGE_TYPE,
            action=ActionTypes.COMPLETED_TASK,
            correlation_id=message.correlation_id,
            data=result.model_dump(mode="json"),
        )
        if message.reply_to:
            await self._reply(answer, f"task {task.task_id} (step {task.step_id})")
        else:
            await self.publish(answer)

    def _handback_reason(self, message: QueueMessage) -> Literal["redelivered", "stale"] | None:
        """Why a control-plane step should go back to the control plane unrun, if it should."""
        if message.stats.redelivered:
            return "redelivered"
        published = message.stats.publish_time
        since = self._listening_since
        if published is not None and since is not None and published < since - STALE_GRACE:
            return "stale"
        return None

    async def _hand_back(
        self, task: TaskDefinition, reason: Literal["redelivered", "stale"]
    ) -> None:
        logger.info(
            "%s: handing task %s step %s back to the control plane (%s)",
            self.service_name,
            task.task_id,
            task.step_id,
            reason,
        )
        await self.publish(
            QueueMessage(
                type=CONTROL_PLANE_MESSAGE_TYPE,
                action=ActionTypes.RUN_BOUNCE,
                data=RunBounce(
                    task_id=task.task_id,
                    step_id=task.step_id,
                    reason=reason,
                ).model_dump(mode="json"),
            )
        )

    async def _on_dead_letter(self, message: QueueMessage, reason: str) -> None:
        """A step of ours was dead-lettered: tell whoever waits for it that it failed."""
        if message.action is not ActionTypes.NEW_TASK:
            return
        try:
            task = TaskDefinition.from_data(message.data)
        except NonRetryableMessageError:
            return
        await self.send_result(message, failed_result(task, f"dead-lettered: {reason}"))

    # -- the control address: inputs for runs, cancels --------------------------------

    async def handle_control(self, message: QueueMessage, **kwargs: Any) -> None:
        """A message at this replica's own address or its service's broadcast key."""
        if message.action is ActionTypes.RUN_CANCEL:
            cancel = RunCancel.from_data(message.data)
            self._cancelled[cancel.task_id] = None
            while len(self._cancelled) > _CANCELLED_KEPT:
                self._cancelled.popitem(last=False)
            self.cancel_run(cancel.task_id)
        elif message.action is ActionTypes.RUN_INPUT:
            await self.on_run_input(RunInput.from_data(message.data))
        else:
            raise self._unsupported(message)

    def cancel_run(self, task_id: str) -> None:  # noqa: B027 - an optional hook
        """Stop the run of `task_id` if this replica holds one (workflow services do)."""

    async def on_run_input(self, run_input: RunInput) -> None:
        """An event for a run: this service holds no runs, so it hands it back."""
        await self.publish(
            QueueMessage(
                type=CONTROL_PLANE_MESSAGE_TYPE,
                action=ActionTypes.RUN_BOUNCE,
                data=RunBounce(
                    task_id=run_input.task_id,
                    step_id=run_input.for_step_id,
                    reason="not_held",
                    input_id=run_input.input_id,
                ).model_dump(mode="json"),
            )
        )

    def _expired(self, message: QueueMessage, what: str) -> bool:
        """True (and a log line) when the caller of `message` stopped waiting for it.

        Such a call is acknowledged without running: nobody would read its answer.
        """
        if not is_expired(message):
            return False
        logger.warning(
            "%s: %s expired at %s before it ran (its caller %s stopped waiting); "
            "acknowledged without running it",
            self.service_name,
            what,
            expires_at(message),
            message.reply_to,
        )
        return True

    async def _reply(self, answer: QueueMessage, what: str) -> None:
        """Publish `answer` to a caller's reply queue; drop it if that queue is gone.

        The work is done: raising would have the request redelivered and the work done again
        (a tool sending e-mails sends them again) for an answer nobody can take.
        """
        try:
            await self.publish(answer)
        except UnroutableMessageError:
            logger.warning(
                "%s: the reply to %s cannot be delivered: reply queue %s is gone (its caller "
                "stopped or restarted); dropped, the work is not run again",
                self.service_name,
                what,
                answer.type,
            )

    @abstractmethod
    async def run_task(self, task: TaskDefinition) -> TaskResult:
        """Do one step of a task. Raising makes it a failed step with the error's text."""

    async def handle_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """`process_message`, counted (what `GET /` reports); control messages apart."""
        if message.action in (ActionTypes.RUN_INPUT, ActionTypes.RUN_CANCEL):
            await self.handle_control(message)
            return
        self.counters["received"] += 1
        self.counters["in_flight"] += 1
        try:
            with self.metrics.step(), tracing.step(self.service_name, message):
                await self.process_message(message, **kwargs)
        except BaseException:
            self.counters["failed"] += 1
            raise
        else:
            self.counters["succeeded"] += 1
        finally:
            self.counters["in_flight"] -= 1

    def status(self) -> dict[str, Any]:
        """What `GET /` answers: who this is, whether it is connected, what it did."""
        return {
            "service_name": self.service_name,
            "description": self.description,
            "type": type(self).__name__,
            "replica_id": self.replica_id,
            "status": "running" if self._consumer is not None else "stopped",
            "broker_connected": self.message_queue.is_connected,
            "messages": dict(self.counters),
        }

    def add_routes(self, app: FastAPI) -> None:  # noqa: B027 - an optional hook
        """Subclasses add their own HTTP routes here (none by default)."""

    @property
    def app(self) -> FastAPI:
        """This service's HTTP API (what `launch_server` serves), built once by `app_factory`."""
        if self._app is None:
            self._app = type(self).app_factory(self)
        return self._app

    async def launch_server(self) -> None:
        """Consume this service's queue and serve its HTTP API until stopped.

        On the way out it stops taking messages and finishes the ones it holds.
        """
        start_consuming = await self.register_to_message_queue()
        consuming = asyncio.create_task(start_consuming(), name=f"service-{self.service_name}")
        self._http = HttpServer(self.app, host=self.host, port=self.port or 0)
        try:
            await self._http.serve(on_started=self._on_started)
        finally:
            self._serving.clear()
            await self.deregister_from_message_queue()
            consuming.cancel()
            await self.deregister_from_control_plane()

    def _on_started(self, port: int) -> None:
        self.port = port
        self._serving.set()
        logger.info("service %s serving on %s", self.service_name, self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def wait_until_serving(self, timeout: float = 10.0) -> str:
        """Wait until `launch_server` answers HTTP; return its URL."""
        async with asyncio.timeout(timeout):
            await self._serving.wait()
        return self.url

    def stop_server(self) -> None:
        """Ask `launch_server` to return (after draining)."""
        if self._http is not None:
            self._http.stop()

    def as_consumer(self, remote: bool = False) -> BaseMessageQueueConsumer:
        """This service as a consumer of its own message type (in-process, or its URL)."""
        if remote:
            if self.port is None:
                raise ControlPlaneError(
                    f"service {self.service_name!r} has no port to be reached at"
                )
            return RemoteMessageConsumer(
                url=f"http://{self.host}:{self.port}/process_message",
                message_type=self.service_name,
                prefetch=self.max_concurrent_tasks,
                headers=auth_headers(self.api_key),
            )
        return CallableMessageConsumer(
            handler=self.handle_message,
            message_type=self.service_name,
            prefetch=self.max_concurrent_tasks,
            on_dead_letter=self._on_dead_letter,
        )

    def as_control_consumer(self) -> BaseMessageQueueConsumer:
        """This replica's own consumer: its address, and its service's broadcast key."""
        return CallableMessageConsumer(
            handler=self.handle_control,
            message_type=self.control_address,
            transient=True,
            binding_keys=(self.broadcast_key,),
            prefetch=100,
        )

    async def register_to_message_queue(self) -> StartConsumingCallable:
        """Declare this service's queue (and this replica's own) now; return the callable
        that starts consuming both."""
        if self._control_consumer is None:
            self._control_consumer = self.as_control_consumer()
        start_control = await self.message_queue.register_consumer(self._control_consumer)
        if self._consumer is None:
            self._consumer = self.as_consumer()
        start_work = await self.message_queue.register_consumer(self._consumer)
        self._listening_since = utc_now()

        async def start_consuming() -> None:
            control = asyncio.create_task(start_control(), name=f"control-{self.control_address}")
            try:
                await start_work()
            finally:
                control.cancel()
                await asyncio.gather(control, return_exceptions=True)

        return start_consuming

    async def deregister_from_message_queue(self) -> None:
        """Stop consuming, after the messages being handled are finished."""
        for attribute in ("_consumer", "_control_consumer"):
            consumer = getattr(self, attribute)
            if consumer is not None:
                setattr(self, attribute, None)
                with contextlib.suppress(ConsumerNotFoundError):  # the queue was cleaned up
                    await self.message_queue.deregister_consumer(consumer)

    async def register_to_control_plane(
        self,
        control_plane_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Tell the control plane at `control_plane_url` that this service exists.

        If it does not answer yet (it may be starting), retry with backoff for up to
        `timeout` seconds (default `LLAMA_AGENTS_STARTUP_TIMEOUT`, else 60).
        """
        self._control_plane_url = control_plane_url
        url = control_plane_url.rstrip("/") + "/services/register"
        headers = auth_headers(api_key or self.api_key)
        body = self.service_definition.model_dump(mode="json")

        async def attempt() -> None:
            try:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ControlPlaneUnavailableError(
                    f"cannot reach the control plane at {control_plane_url}: {exc}"
                ) from exc
            if response.status_code == 401:
                raise UnauthorizedError(
                    f"the control plane at {control_plane_url} refused the API key"
                )
            if not response.is_success:
                raise ControlPlaneError(
                    f"the control plane refused to register {self.service_name!r}: "
                    f"{response.status_code} {response.text[:200]}"
                )

        await with_backoff(
            attempt,
            what=f"the control plane at {control_plane_url}",
            retry_on=(ControlPlaneUnavailableError,),
            timeout=timeout if timeout is not None else env_float("STARTUP_TIMEOUT", 60.0),
        )

    async def deregister_from_control_plane(self) -> None:
        """Tell the control plane this replica stopped (best effort, on the way out).

        The service is removed from the registry only if nothing consumes its queue any
        more: other replicas keep it registered.
        """
        if self._control_plane_url is None:
            return
        url = self._control_plane_url.rstrip("/") + "/services/deregister"
        body = {"service_name": self.service_name, "if_unconsumed": True}
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                await client.post(url, json=body, headers=auth_headers(self.api_key))
        except httpx.HTTPError as exc:
            logger.info(
                "could not deregister %s from the control plane: %s", self.service_name, exc
            )

    async def launch_local(self) -> asyncio.Task[None]:
        """Register with the queue and consume in the background; returns that task."""
        start_consuming = await self.register_to_message_queue()
        self._consuming = asyncio.create_task(
            start_consuming(), name=f"service-{self.service_name}"
        )
        return self._consuming

    async def publish(self, message: QueueMessage) -> None:
        """Publish as this service."""
        message.publisher_id = self.publisher_id
        await self.message_queue.publish(message)

    def _unsupported(self, message: QueueMessage) -> NonRetryableMessageError:
        """The error for a message this service cannot handle (it is dead-lettered at once)."""
        return NonRetryableMessageError(
            f"service {self.service_name!r} does not handle {message.action!r} messages"
        )
