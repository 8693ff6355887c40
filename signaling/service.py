"""Room actions: join, leave, hands, stage, mute, kick — rules and state changes.

Everything here checks permissions, changes the Store, tells the media plane and
publishes the room event; the WebSocket layer only parses and answers.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from contracts.errors import ErrorCode, SankeError
from contracts.events import RoomEvent
from contracts.media import MediaEvent, MediaPlane
from contracts.protocol import (
    Error,
    HandRaised,
    LeaveReason,
    Muted,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    RoomClosed,
    StageChanged,
)
from contracts.rooms import ROOM_ROLES, Participant, Role, RoomKind, RoomState
from contracts.store import Store
from signaling.audit import AuditSink
from signaling.hub import LocalPeer, RoomHub
from signaling.media_messages import protocol_message
from signaling.metrics import JOINS, LEFT, PARTICIPANTS
from signaling.names import display_name
from signaling.recording_control import RecordingControl, Switcher
from signaling.removals import PendingRemovals
from signaling.rights import Rights
from signaling.rooms import RoomRepository
from signaling.tokens import Claims

log = logging.getLogger(__name__)


def participant_info(p: Participant) -> ParticipantInfo:
    return ParticipantInfo(
        id=p.id,
        role=p.role,
        name=p.name,
        classroom_id=p.classroom_id,
        school_id=p.school_id,
        hand_raised=p.hand_raised,
        on_stage=p.on_stage,
        muted=p.muted,
        publish_only=p.publish_only,
    )


class RoomObserver(Protocol):
    """Told of every join and leave (lesson attendance, metrics); must not raise."""

    async def participant_joined(self, participant: Participant) -> None: ...

    async def participant_left(self, participant: Participant, reason: LeaveReason) -> None: ...

    async def room_closed(self, room_id: str) -> None: ...


class RoomService:
    def __init__(
        self,
        store: Store,
        hub: RoomHub,
        media: MediaPlane,
        node_id: str,
        rights: Rights | None = None,
        *,
        recorded_kinds: Iterable[RoomKind] = (),
        audit: AuditSink | None = None,
    ) -> None:
        self.store = store
        self.repo = RoomRepository(store)
        self.hub = hub
        self.media = media
        self.node_id = node_id
        self.rights = rights if rights is not None else Rights(store)
        self.recording = RecordingControl(self.repo, hub, media, recorded_kinds, audit)
        self.observers: list[RoomObserver] = []
        self.pending_removals = PendingRemovals(lambda p, r: self.remove(p, r, kick=False))

    async def _notify(self, event: str, call: Callable[[RoomObserver], Awaitable[None]]) -> None:
        """Tell every observer; one failing observer neither stops the others nor the caller."""
        for observer in self.observers:
            try:
                await call(observer)
            except Exception:
                log.exception("room observer failed on %s", event)

    async def _notify_joined(self, participant: Participant) -> None:
        await self._notify(f"join of {participant.id}", lambda o: o.participant_joined(participant))

    async def _notify_left(self, participant: Participant, reason: LeaveReason) -> None:
        await self._notify(
            f"leave of {participant.id}", lambda o: o.participant_left(participant, reason)
        )

    async def join(
        self,
        claims: Claims,
        room_id: str | None,
        name: str | None,
        peer: LocalPeer,
        *,
        publish_only: bool = False,
    ) -> tuple[Participant, list[Participant]]:
        """Admit ``peer`` to the token's room; returns it and who was there before.
        ``publish_only``: an ingest source, which the SFU forwards nothing to."""
        if claims.role not in ROOM_ROLES:
            raise SankeError(
                ErrorCode.forbidden, f"role {claims.role.value} cannot join a room", 403
            )
        if not claims.room:
            raise SankeError(ErrorCode.wrong_room, "the token names no room", 403)
        if room_id is not None and room_id != claims.room:
            raise SankeError(ErrorCode.wrong_room, "the token is for another room", 403)
        await self.rights.check(claims)
        room = await self.repo.get(claims.room)
        if room is None:
            raise SankeError(ErrorCode.room_not_found, f"room {claims.room} does not exist", 404)
        if room.state is RoomState.closed:
            raise SankeError(ErrorCode.room_closed, f"room {room.id} is closed", 410)
        others = await self.repo.list_participants(room.id)
        # The same subject joining again (a kiosk after a network drop) replaces its old
        # connection instead of appearing twice.
        for old in [p for p in others if p.subject == claims.sub]:
            await self.remove(old, "replaced", kick=True)
        others = [p for p in others if p.subject != claims.sub]
        if len(others) >= room.max_participants:
            raise SankeError(ErrorCode.room_full, f"room {room.id} is full", 409)
        participant = Participant(
            id="p_" + secrets.token_hex(6),
            room_id=room.id,
            subject=claims.sub,
            role=claims.role,
            name=display_name(claims.role, claims.name, name, claims.sub),
            classroom_id=claims.classroom_id,
            school_id=claims.school_id,
            node_id=self.node_id,
            publish_only=publish_only,
        )
        await self.repo.put_participant(participant)
        peer.participant_id = participant.id
        peer.role = participant.role
        await self.hub.attach(room, peer)

        async def send_media(event: MediaEvent) -> None:
            peer.deliver(protocol_message(event))

        await self.media.join(participant, send_media)
        await self.hub.publish(
            RoomEvent(
                room_id=room.id,
                message=ParticipantJoined(participant=participant_info(participant)),
                about_role=participant.role,
                exclude=participant.id,
            )
        )
        JOINS.labels(participant.role.value).inc()
        PARTICIPANTS.labels(participant.role.value).inc()
        await self._notify_joined(participant)
        return participant, others

    async def remove(self, participant: Participant, reason: LeaveReason, *, kick: bool) -> bool:
        """Take a participant out of its room (idempotent); tell the room once."""
        removed = await self.repo.remove_participant(participant.room_id, participant.id)
        if not removed:
            return False
        await self.media.leave(participant.room_id, participant.id)
        if kick:
            await self.hub.publish(
                RoomEvent(
                    room_id=participant.room_id,
                    action="kick",
                    target=participant.id,
                    message=Error(
                        code=ErrorCode.kicked, message=f"removed from the room ({reason})"
                    ),
                )
            )
        await self.hub.publish(
            RoomEvent(
                room_id=participant.room_id,
                message=ParticipantLeft(participant_id=participant.id, reason=reason),
                about_role=participant.role,
                exclude=participant.id,
            )
        )
        if participant.node_id == self.node_id:
            PARTICIPANTS.labels(participant.role.value).dec()
        LEFT.labels(reason).inc()
        await self._notify_left(participant, reason)
        return True

    async def _current(self, participant: Participant) -> Participant:
        fresh = await self.repo.get_participant(participant.room_id, participant.id)
        if fresh is None:
            raise SankeError(ErrorCode.not_joined, "you are no longer in the room")
        return fresh

    async def _target(self, room_id: str, participant_id: str) -> Participant:
        target = await self.repo.get_participant(room_id, participant_id)
        if target is None:
            raise SankeError(
                ErrorCode.participant_not_found, f"no participant {participant_id}", 404
            )
        return target

    @staticmethod
    def _require(actor: Participant, *roles: Role) -> None:
        if actor.role not in roles:
            allowed = "/".join(r.value for r in roles)
            raise SankeError(
                ErrorCode.forbidden, f"only {allowed} may do this, you are {actor.role.value}", 403
            )

    async def set_hand(self, actor: Participant, raised: bool, target_id: str | None) -> None:
        if target_id is None or target_id == actor.id:
            self._require(actor, Role.classroom)
            target = await self._current(actor)
        else:
            self._require(actor, Role.teacher)
            if raised:
                raise SankeError(ErrorCode.forbidden, "only a classroom raises its own hand", 403)
            target = await self._target(actor.room_id, target_id)
        target.hand_raised = raised
        await self.repo.put_participant(target)
        await self.hub.publish(
            RoomEvent(
                room_id=actor.room_id,
                message=HandRaised(participant_id=target.id, raised=raised),
                about_role=target.role,
            )
        )

    async def set_stage(self, actor: Participant, target_id: str, on_stage: bool) -> None:
        self._require(actor, Role.teacher)
        target = await self._target(actor.room_id, target_id)
        self._require_classroom(target)
        target.on_stage = on_stage
        lowered = on_stage and target.hand_raised
        if lowered:
            target.hand_raised = False
        await self.repo.put_participant(target)
        if lowered:
            # Going on stage answers the raised hand: everyone sees it lowered.
            await self.hub.publish(
                RoomEvent(
                    room_id=actor.room_id,
                    message=HandRaised(participant_id=target.id, raised=False),
                    about_role=target.role,
                )
            )
        await self.media.set_stage(actor.room_id, target.id, on_stage)
        await self.hub.publish(
            RoomEvent(
                room_id=actor.room_id,
                message=StageChanged(participant_id=target.id, on_stage=on_stage),
                about_role=target.role,
            )
        )

    async def mute(self, actor: Participant, target_id: str | None, muted: bool) -> int:
        self._require(actor, Role.teacher)
        if target_id is not None:
            target = await self._target(actor.room_id, target_id)
            self._require_classroom(target)
            targets = [target]
        else:
            everyone = await self.repo.list_participants(actor.room_id)
            targets = [p for p in everyone if p.role is Role.classroom]
        for target in targets:
            target.muted = muted
            await self.repo.put_participant(target)
            await self.media.set_muted(actor.room_id, target.id, muted)
            await self.hub.publish(
                RoomEvent(
                    room_id=actor.room_id,
                    message=Muted(participant_id=target.id, muted=muted),
                    about_role=target.role,
                )
            )
        return len(targets)

    async def set_recording(self, actor: Participant, on: bool) -> None:
        """The teacher stops or restarts the lesson's recording (signaling.recording_control);
        when nothing changes the teacher alone is told how it stands."""
        self._require(actor, Role.teacher)
        who = Switcher(subject=actor.subject, role=actor.role, school_id=actor.school_id)
        status, changed = await self.recording.set(actor.room_id, on, who)
        if not changed:
            await self.hub.publish(
                RoomEvent(room_id=actor.room_id, message=status, target=actor.id)
            )

    async def end_lesson(self, actor: Participant) -> None:
        self._require(actor, Role.teacher)
        await self.close_room(actor.room_id)

    async def kick(self, actor: Participant, target_id: str) -> None:
        self._require(actor, Role.teacher)
        target = await self._target(actor.room_id, target_id)
        if target.id == actor.id:
            raise SankeError(ErrorCode.invalid_request, "you cannot kick yourself")
        await self.remove(target, "kicked", kick=True)

    async def close_room(self, room_id: str) -> bool:
        room = await self.repo.get(room_id)
        if room is None:
            return False
        room.state = RoomState.closed
        room.closed_at = time.time()
        await self.repo.put(room)
        for p in await self.repo.list_participants(room_id):
            if await self.repo.remove_participant(room_id, p.id):
                await self._notify_left(p, "room_closed")
        await self.media.close_room(room_id)
        await self.hub.publish(
            RoomEvent(room_id=room_id, action="close", message=RoomClosed(room_id=room_id))
        )
        await self._notify(f"close of {room_id}", lambda o: o.room_closed(room_id))
        return True

    @staticmethod
    def _require_classroom(target: Participant) -> None:
        if target.role is not Role.classroom:
            raise SankeError(
                ErrorCode.invalid_request, "only classrooms go on stage or are muted", 400
            )
