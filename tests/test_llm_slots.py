"""Engine slots and the llama-server command line: pure logic, fast."""

from __future__ import annotations

from pathlib import Path

from bots.capacity import default_capacity
from bots.llm_backend import LLMBackend, SlotAllocator
from bots.llm_server import library_dir, server_command

ENGINE = LLMBackend("embedded", "http://127.0.0.1:8089/v1", "local", slots=3)


def test_each_session_gets_a_slot_of_its_own_until_there_are_none():
    slots = SlotAllocator()
    first, second = slots.acquire(ENGINE), slots.acquire(ENGINE)
    assert {first, second} == {0, 1}
    assert slots.acquire(ENGINE) is None  # a third shares: the engine picks an idle slot
    assert ENGINE.background_fields() == {"cache_prompt": True, "id_slot": 2}  # kept free
    slots.release(ENGINE, first)
    assert slots.acquire(ENGINE) == first
    slots.release(ENGINE, None)  # a session that held none
    assert slots.held(ENGINE) == 2
    one = LLMBackend("embedded", "http://127.0.0.1:8089/v1", "local", slots=1)
    assert one.background_slot is None and SlotAllocator().acquire(one) == 0


def test_processes_sharing_an_engine_take_disjoint_slots():
    engine = LLMBackend("embedded", "http://127.0.0.1:8089/v1", "local", slots=6)
    first, second = SlotAllocator(0, 2), SlotAllocator(1, 2)  # slot 5: background work
    assert [first.acquire(engine) for _ in range(4)] == [0, 2, 4, None]
    assert [second.acquire(engine) for _ in range(3)] == [1, 3, None]


def test_requests_carry_their_slot_only_to_an_engine_with_slots():
    assert ENGINE.request_fields(1) == {"cache_prompt": True, "id_slot": 1}
    assert ENGINE.request_fields(None) == {"cache_prompt": True}
    ollama = LLMBackend("ollama", "http://127.0.0.1:11434/v1", "llama3.2:3b")
    assert ollama.request_fields(1) == {}
    assert SlotAllocator().acquire(ollama) is None  # no slots to hold there


def test_the_engine_gets_a_context_per_slot():
    cmd = server_command(Path("/x/llama-server"), "m.gguf", "127.0.0.1", 8089, 2, 4096, 8)
    assert cmd[cmd.index("--parallel") + 1] == "8"
    assert cmd[cmd.index("--ctx-size") + 1] == str(4096 * 8)
    assert cmd[cmd.index("--alias") + 1] == "local"


def test_the_room_holds_four_calls_a_core():
    assert default_capacity(2) == 8
    assert default_capacity(1) == 4


def test_library_links_follow_the_installed_files(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server").touch()
    (bin_dir / "libllama.so.0.0.7000").touch()
    (bin_dir / "libggml-base.so.0.9.4").touch()
    libs = library_dir(bin_dir / "llama-server", tmp_path / "cache")
    assert (libs / "libllama.so.0").resolve() == (bin_dir / "libllama.so.0.0.7000").resolve()
    assert (libs / "libggml-base.so.0").exists()
    # A newer build replaces the links on the next start.
    (bin_dir / "libllama.so.0.0.7000").unlink()
    (bin_dir / "libllama.so.0.0.7100").touch()
    libs = library_dir(bin_dir / "llama-server", tmp_path / "cache")
    assert (libs / "libllama.so.0").resolve().name == "libllama.so.0.0.7100"
