"""Prefetch through bad networks (issue 3), on the real engine with real registries."""
from __future__ import annotations

import json
import re
import time

from images import listed
from registries import Proxy, docker_config, locked_registry, seed_image

# Quick retries; the timeout only has to outlast a pull on an engine that the parallel suite keeps busy.
FAST = "[tool.buildlib.pull]\nattempts = 3\nbackoff = 0.1\ntimeout = 30\n"


def mirrors(*addresses: str) -> str:
    return f"mirrors = {json.dumps(list(addresses))}\n"


def pulled(run) -> list[tuple[str, str]]:
    """(image, source) for each pull that the run finished."""
    return re.findall(r"^pulling \[\d+/\d+\] (\S+) from (\S+): done", run.stderr, re.M)


def test_shared_base_images_are_pulled_once_and_in_parallel(make_repo, client, registry, uid):
    proxy = Proxy(registry.port)
    bases = [f"buildlibtest/{uid}-b{i}:1.0" for i in range(6)]
    for i, base in enumerate(bases):
        seed_image(client, registry.address, base, f"{uid}-{i}")
    repo = make_repo({f"s{i}": f"FROM {bases[i % 6]}\nRUN echo {i} > /s\n" for i in range(10)},
                     mirrors(proxy.address) + FAST)
    run = repo.doit("-n", "4", "build_all")
    assert run.returncode == 0, run.stderr
    assert sorted(pulled(run)) == sorted((base, proxy.address) for base in bases)
    assert len(run.built()) == 10
    assert proxy.most_active > 1   # several pulls were in flight at once
    again = repo.doit("-n", "4", "build_all")
    assert pulled(again) == [] and again.built() == set()
    proxy.close()


def test_upstream_unreachable_mirror_serves_under_the_original_name(make_repo, client, registry, uid):
    base = f"buildlibtest/{uid}:1.0"
    seed_image(client, registry.address, base, uid)
    repo = make_repo({"app": f"FROM {base}\nRUN cat /marker\n"}, mirrors(registry.address) + FAST)
    run = repo.doit("build_all")
    assert run.returncode == 0, run.stderr
    assert f"pulling [1/1] {base} from docker.io: failed: no such host (not retried)" in run.stderr
    assert pulled(run) == [(base, registry.address)]
    assert client.inspect_image(base)["Id"]
    assert run.built() == {"app"}


def test_registry_down_fails_only_its_services_and_the_next_run_catches_up(make_repo, client, registry, uid):
    first, second = f"buildlibtest/{uid}-a:1", f"buildlibtest/{uid}-b:1"
    seed_image(client, registry.address, first, f"{uid}a")
    seed_image(client, registry.address, second, f"{uid}b")
    repo = make_repo({"a": f"FROM {first}\n", "b": f"FROM {second}\n"},
                     mirrors(registry.address) + "[tool.buildlib.pull]\nattempts = 2\nbackoff = 0.1\n")
    assert repo.doit(f"prefetch:{second}").returncode == 0
    registry.stop()
    started = time.monotonic()
    run = repo.doit("build_all")
    assert time.monotonic() - started < 60
    assert run.returncode != 0
    assert run.results() == {"a": "failed", "b": "built"}
    reason = f"base image {first} could not be pulled: docker.io: no such host (not retried); " \
             f"{registry.address}: connection refused (2 attempts)"
    assert f"] FAILED a: {reason}" in run.stderr
    assert "Traceback" not in run.stderr

    registry.start()
    run = repo.doit("build_all")
    assert run.returncode == 0, run.stderr
    assert pulled(run) == [(first, registry.address)]
    assert run.results() == {"a": "built", "b": "up to date"}


def test_cut_connections_are_retried_until_the_pull_works(make_repo, client, registry, uid):
    proxy = Proxy(registry.port)
    base = f"buildlibtest/{uid}:1.0"
    seed_image(client, registry.address, base, uid)
    repo = make_repo({"app": f"FROM {base}\n"},
                     mirrors(proxy.address) + FAST.replace("attempts = 3", "attempts = 4"))
    proxy.cut_next = 2
    run = repo.doit("build_all")
    assert run.returncode == 0, run.stderr
    assert proxy.cut_next <= 0 and proxy.connections > 2
    assert pulled(run) == [(base, proxy.address)]
    proxy.close()


def test_a_stalled_registry_cannot_hang_the_run(make_repo, registry, uid):
    proxy = Proxy(registry.port)
    proxy.stall = True
    base = f"buildlibtest/{uid}:1.0"
    repo = make_repo({"app": f"FROM {base}\n"},
                     mirrors(proxy.address) + "[tool.buildlib.pull]\nattempts = 2\nbackoff = 0.1\ntimeout = 2\n")
    started = time.monotonic()
    run = repo.doit("build_all")
    assert time.monotonic() - started < 30
    assert run.returncode != 0
    assert f"{proxy.address}: no answer in time (2 attempts)" in run.stderr
    proxy.close()


def test_an_image_no_source_has_fails_at_once_in_one_line(make_repo, registry, uid):
    base = f"buildlibtest/{uid}:9.9"
    repo = make_repo({"app": f"FROM {base}\n", "other": "FROM alpine:3.20\n"}, mirrors(registry.address) + FAST)
    started = time.monotonic()
    run = repo.doit("build_all")
    assert time.monotonic() - started < 30
    assert run.returncode != 0
    failures = [line for line in run.stderr.splitlines() if line.startswith("FAILED")]
    assert failures[0].startswith(f"FAILED prefetch:{base}: base image {base} could not be pulled: ")
    assert failures[0].count("(not retried)") == 2
    assert run.results()["other"] in ("built", "up to date")


def test_lock_pins_base_images_until_locked_again(make_repo, client, registry, uid):
    base = f"buildlibtest/{uid}:1.0"
    first = seed_image(client, registry.address, base, f"{uid}-one")
    repo = make_repo({"app": f"FROM {base}\nRUN cat /marker\n"}, mirrors(registry.address) + FAST)
    assert repo.doit("lock").returncode == 0
    assert json.loads((repo.path / "images.lock").read_text())["images"] == {
        base: {"digest": first, "source": registry.address}}
    assert repo.doit("build_all").built() == {"app"}

    # The mirror's tag moves to other content; a machine without the base still gets the locked one.
    second = seed_image(client, registry.address, base, f"{uid}-two")
    client.remove_image(base)
    run = repo.doit("build_all")
    assert run.returncode == 0, run.stderr
    assert run.built() == set()
    assert any(known.endswith(first) for known in client.inspect_image(base)["RepoDigests"])

    assert repo.doit("lock").returncode == 0
    assert repo.status()["app"]["reason"] == f"base {base} differs from images.lock"
    run = repo.doit("build_all")
    assert run.built() == {"app"}, run.stderr
    assert any(known.endswith(second) for known in client.inspect_image(base)["RepoDigests"])


def test_a_mirror_serving_other_content_for_a_pinned_digest_is_refused(make_repo, client, registry, uid):
    from registries import LyingMirror
    base = f"buildlibtest/{uid}:1.0"
    pinned = seed_image(client, registry.address, base, f"{uid}-pinned")
    other = seed_image(client, registry.address, f"buildlibtest/{uid}:other", f"{uid}-other")
    liar = LyingMirror(registry.address, pinned, other)
    repo = make_repo({"app": f"FROM {base}\n"}, mirrors(liar.address) + FAST)
    (repo.path / "images.lock").write_text(json.dumps({"images": {base: {"digest": pinned, "source": "x"}}}))
    run = repo.doit("build_all")
    assert run.returncode != 0
    # overlay2 and the containerd store word it differently; both refuse it at once
    assert re.search(rf"{liar.address}: (manifest verification failed for digest {pinned}|.*failed precondition) "
                     r"\(not retried\)", run.stderr), run.stderr
    assert listed(client, name=base) == []
    liar.close()


def test_credentials_come_from_the_docker_config_and_never_show(make_repo, client, tmp_path, uid):
    password = f"pw-{uid}-secret"
    locked = locked_registry(tmp_path / "locked", "tester", password)
    base = f"buildlibtest/{uid}:1.0"
    seed_image(client, locked.address, base, uid, auth={"username": "tester", "password": password})

    repo = make_repo({"app": f"FROM {base}\n"}, mirrors(locked.address) + FAST)
    wrong = repo.doit("build_all", env=docker_config(tmp_path / "wrong", locked.address, "tester", "wrong-password"))
    assert wrong.returncode != 0
    assert re.search(rf"{locked.address}: .*(?i:unauthorized|authentication required).* \(not retried\)", wrong.stderr)
    assert "wrong-password" not in wrong.stdout + wrong.stderr

    run = repo.doit("build_all", env=docker_config(tmp_path / "right", locked.address, "tester", password))
    assert run.returncode == 0, run.stderr
    assert pulled(run) == [(base, locked.address)]
    assert password not in run.stdout + run.stderr
    assert password not in (repo.path / ".doit.db").read_bytes().decode(errors="replace")
    locked.stop()
