"""Lifecycle of the nodes that run the network (edge, fog, cloud): ROS 2 managed nodes.

- configure: read and check the parameters, load the model, create the publishers (the slow part:
  a model load; a wrong parameter fails here, with the parameter named);
- activate: start taking frames (subscriptions, worker thread, timers that need them);
- deactivate: stop taking frames (what activate created is destroyed; nothing is lost that was
  already accounted);
- cleanup: release the model and what configure created.

``autostart`` (default true) runs configure and activate in the constructor, so ``ros2 run`` and
the launch files start a working node as before, and a failed configure ends the process with its
error. ``l2p run`` starts these nodes with ``autostart:=false`` and drives the transitions itself
through each node's ``change_state`` service (:func:`drive`): every model loads in parallel, and
the cloud is active before any edge sends it a frame.

What a transition creates is found by comparing the node's publishers, subscriptions, timers,
services and clients before and after it, so each node writes its configure and activate as plain
construction code and the matching teardown needs no list kept by hand.
"""
from __future__ import annotations

import time
from typing import Callable

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from l2p_ros.nodes.common import LiveParameters, bounded, declare

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
# The executables that are lifecycle nodes (``l2p run`` drives them).
LIFECYCLE_EXECUTABLES = ("edge_node", "cloud_node")


class ManagedNode(LifecycleNode):
    """A lifecycle node whose subclass writes :meth:`configure`, :meth:`activate`, :meth:`deactivate`
    (optional: stop threads; entities are destroyed here) and :meth:`release` (optional: drop the
    model), then calls :meth:`start_if_autostart` at the end of its constructor."""

    def __init__(self, name: str):
        super().__init__(name)
        self.autostart = declare(self, "autostart", True, "configure and activate at start; false: wait for "
                                 "lifecycle transitions (ros2 lifecycle set, or l2p run)")
        self.failure: Exception | None = None  # why the last transition failed
        self.live = LiveParameters(self)  # parameters applied while running (declared on configure)
        self._created: dict[str, list] = {"configure": [], "activate": []}

    # -- what subclasses write --------------------------------------------------------------------
    def configure(self) -> None:
        raise NotImplementedError

    def activate(self) -> None:
        raise NotImplementedError

    def deactivate(self) -> None:
        """Stop what activate started (threads); its entities are destroyed after this returns."""

    def release(self) -> None:
        """Drop what configure loaded (the model); its entities are destroyed after this returns."""

    # -- the lifecycle ------------------------------------------------------------------------------
    def start_if_autostart(self) -> None:
        if not self.autostart:
            self.get_logger().info("waiting for lifecycle transitions (autostart false)")
            return
        for trigger in (self.trigger_configure, self.trigger_activate):
            if trigger() != SUCCESS:
                raise self.failure or RuntimeError(f"{self.get_name()}: {trigger.__name__} failed")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("configure", self.configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._run("activate", self.activate)
        return super().on_activate(state) if result == SUCCESS else result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop("activate", self.deactivate)
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop("configure", self.release)
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._created["activate"]:
            self._stop("activate", self.deactivate)
        self._stop("configure", self.release)
        return SUCCESS

    def destroy_node(self):
        if self._created["activate"]:  # stopped with the process: threads first
            self._stop("activate", self.deactivate)
        return super().destroy_node()

    # -- helpers ------------------------------------------------------------------------------------
    def _entities(self) -> set:
        return {*self.publishers, *self.subscriptions, *self.timers, *self.services, *self.clients}

    def _run(self, step: str, body: Callable[[], None]) -> TransitionCallbackReturn:
        before = self._entities()
        started = time.monotonic()
        try:
            body()
        except Exception as error:  # the transition fails; the node stays where it was, saying why
            self.failure = error
            self.get_logger().error(f"{step} failed: {bounded(error)}")
            self._created[step] = list(self._entities() - before)
            self._stop(step, lambda: None)
            return FAILURE
        self._created[step] = list(self._entities() - before)
        self.get_logger().info(f"{step}d in {time.monotonic() - started:.1f} s")
        return SUCCESS

    def _stop(self, step: str, body: Callable[[], None]) -> None:
        body()
        for entity in self._created[step]:  # each destroy_* is False for an entity of another kind
            any(destroy(entity) for destroy in (self.destroy_subscription, self.destroy_publisher, self.destroy_timer,
                                                self.destroy_service, self.destroy_client))
        self._created[step] = []


def drive(node, targets: list[str], spin: Callable[[], None], failed: Callable[[], list[str]],
          timeout_s: float) -> None:
    """Configure every node of ``targets`` (fully qualified names, e.g. ``/cloud_node``,
    ``/v0/edge_node``) at once, then activate them one by one in the given order, through their
    ``change_state`` services, from ``node``. RuntimeError naming the node when a transition fails,
    a node process dies (``failed()``) or ``timeout_s`` passes.

    A service is "ready" once its request reader matched ours, but its response writer may not have
    matched our reader yet, and Fast DDS then drops the response (seen with parameter services under
    load). A transition is not idempotent, so it is sent once, and its outcome is also read from the
    node's state (``get_state``, which is, and is asked again until answered)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    deadline = time.monotonic() + timeout_s
    change = {target: node.create_client(ChangeState, f"{target}/change_state") for target in targets}
    get = {target: node.create_client(GetState, f"{target}/get_state") for target in targets}
    try:
        def wait(predicate, what: str) -> None:
            while not predicate():
                spin()
                failures = failed()
                if failures:
                    raise RuntimeError("a node failed to start:\n" + "\n".join(failures))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} after {timeout_s:.0f} s")

        for target in targets:
            wait(lambda: change[target].service_is_ready() and get[target].service_is_ready(),
                 f"no lifecycle services on {target}")

        def transition(batch: list[str], transition_id: int, label: str, goal: str) -> None:
            sent = {target: change[target].call_async(ChangeState.Request(transition=Transition(id=transition_id)))
                    for target in batch}
            asked: dict = {}
            reached: set[str] = set()

            def done() -> bool:
                for target in batch:
                    if target in reached or sent[target].done():
                        continue
                    question = asked.get(target)
                    if question is not None and question[0].done():
                        if question[0].result().current_state.label == goal:
                            reached.add(target)
                        question = None
                    elif question is not None and time.monotonic() - question[1] > 1.0:
                        get[target].remove_pending_request(question[0])  # unanswered: ask again
                        question = None
                    if question is None and target not in reached:
                        asked[target] = (get[target].call_async(GetState.Request()), time.monotonic())
                return all(target in reached or sent[target].done() for target in batch)

            wait(done, f"{label} of {', '.join(batch)} unanswered")
            refused = [target for target in batch
                       if target not in reached and not sent[target].result().success]
            if refused:
                raise RuntimeError(f"{label} failed on {', '.join(refused)} (its log says why)")

        transition(list(targets), Transition.TRANSITION_CONFIGURE, "configure", "inactive")
        for target in targets:
            transition([target], Transition.TRANSITION_ACTIVATE, "activate", "active")
    finally:
        for client in (*change.values(), *get.values()):
            node.destroy_client(client)
