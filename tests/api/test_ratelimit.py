"""The per-token rate limit across two real replicas: shared through the machine's real Redis (one bucket for
both), and this replica's own bucket when Redis is unreachable."""
from __future__ import annotations

import uuid

from api.ratelimit import RedisRateLimiter
from tests.api.conftest import Service


def test_two_replicas_share_one_bucket_through_redis(tmp_path):
    env = {"K2FORGE_REDIS_URL": "redis://127.0.0.1:6379/0", "K2FORGE_REDIS_PREFIX": f"k2forge-test:{uuid.uuid4().hex}:",
           "K2FORGE_RATE_PER_S": "0.5", "K2FORGE_RATE_BURST": "6"}
    replicas = [Service(tmp_path, extra_env=env).start(), Service(tmp_path, extra_env=env).start()]
    try:
        codes = [replicas[i % 2].client.get("/v1/jobs").status_code for i in range(12)]
        assert 6 <= codes.count(200) <= 7 and set(codes) == {200, 429}, codes    # own buckets: all 12 pass
        assert replicas[1].client_for("bob").get("/v1/jobs").status_code == 200   # per token
    finally:
        for r in replicas:
            r.stop()


def test_without_redis_the_replica_limits_on_its_own():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", rate=0.5, burst=3)      # nothing listens on port 1
    assert [limiter.allow("alice") for _ in range(4)] == [True, True, True, False]
