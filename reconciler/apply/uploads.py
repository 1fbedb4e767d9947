"""Training images to Novita: each content hash uploaded once, right before a training that needs it.

Uploads wait for a slot in their training's turn (the order trainings asked for their images, i.e. the
plan's), so one dataset's images go up together and its training is submitted the moment they are, ahead of
the other datasets' uploads (apply/slots.py), while those go on.

The assets_id is recorded as "pending" the moment Novita issues the upload URL, before the bytes go out,
so a kill after a completed PUT costs no second upload; if Novita later rejects the id in a training create,
the trainer asks for that image to be uploaded again (`forget`).
"""

from __future__ import annotations

import asyncio

from reconciler.apply.context import Run
from reconciler.apply.outcome import Interrupted, ResourceFailed, UploadFailed
from reconciler.desired.resources import DesiredImage, DesiredModel
from reconciler.errors import NovitaError
from reconciler.state import ImageRecord, now_iso


class Uploader:
    def __init__(self, run: Run) -> None:
        self.run = run
        self._uploads: dict[str, asyncio.Future[str]] = {}  # content hash -> its upload under way
        self._turns: dict[str, int] = {}  # model name -> its uploads' priority: 1 for the first to ask, ...

    async def upload(self, image: DesiredImage, turn: int = 1) -> str:
        """The assets_id of an image: from state, from an upload under way, or uploaded now (once per hash)."""
        run = self.run
        pending = self._uploads.get(image.sha256)
        if pending is not None:  # being uploaded by another training of this apply
            return await asyncio.shield(pending)
        known = run.state.images.get(image.sha256)
        if known is not None:
            return known.assets_id
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._uploads[image.sha256] = future

        async def record_ticket(assets_id: str) -> None:
            # Recorded before the bytes go out: a kill after the PUT completes then costs no second upload.
            run.state.images[image.sha256] = ImageRecord(
                assets_id=assets_id, format=image.format, uploaded_at=now_iso(), status="pending"
            )
            await run.commit()

        try:
            async with run.slots.at(turn):
                run.check_stop()
                size = image.path.stat().st_size
                assets_id = await run.client.upload_image(image.path, image.format, on_ticket=record_ticket)
            run.state.images[image.sha256] = ImageRecord(
                assets_id=assets_id, format=image.format, uploaded_at=now_iso()
            )
            await run.commit()
            run.result.uploaded += 1
            run.emit("upload", None, f"uploaded {image.display} ({size} bytes)", sha256=image.sha256, bytes=size)
            future.set_result(assets_id)
            return assets_id
        except NovitaError as exc:  # the storage's or the ticket's answer, named with the image it was for
            self._uploads.pop(image.sha256, None)
            failure = ResourceFailed(UploadFailed(image.display, str(exc)))
            future.set_exception(failure)
            raise failure from exc
        except BaseException as exc:
            self._uploads.pop(image.sha256, None)
            future.set_exception(exc if isinstance(exc, Exception) else Interrupted())
            raise

    async def upload_all(self, model: DesiredModel) -> dict[str, str]:
        """content hash -> assets_id for every image of the model's dataset."""
        turn = self._turns.setdefault(model.name, len(self._turns) + 1)
        ids = await asyncio.gather(*(self.upload(i, turn) for i in model.images))
        return {i.sha256: a for i, a in zip(model.images, ids, strict=True)}

    def forget(self, sha256: str, assets_id: str) -> None:
        """Novita does not know `assets_id`: drop its record (and this apply's upload of it, if it made that one)
        so the next `upload` sends the image again.

        Only the record that was sent: a training sharing the image may have uploaded it again meanwhile,
        and that fresh upload must be reused, not repeated.
        """
        record = self.run.state.images.get(sha256)
        if record is not None and record.assets_id == assets_id:
            del self.run.state.images[sha256]
        done = self._uploads.get(sha256)
        if done is not None and done.done() and done.result() == assets_id:
            del self._uploads[sha256]  # uploaded earlier in this apply: without this, `upload` returned it again
