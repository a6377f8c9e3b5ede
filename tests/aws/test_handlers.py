"""Each Lambda handler invoked directly with a realistic event, against moto (S3, SQS, Glue, Secrets
Manager) on 127.0.0.1 and the simulated Spotify API. The Lambda runtime itself cannot run here: the
context object below stands in for it (Powertools only reads its attributes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Fault
from spotify_pipeline.tables.catalog import open_catalog

from ..conftest import SimulatorFactory
from .conftest import Aws


@dataclass
class FakeLambdaContext:  # stands in for the Lambda runtime's context object
    function_name: str = "spotify-pipeline-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:spotify-pipeline-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


SCHEDULED_EVENT = {  # what EventBridge Scheduler delivers to a target Lambda
    "version": "0",
    "id": "5e0c8d4f-2b6a-4d6e-9f1b-0c3f6a1d2e3f",
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "account": "123456789012",
    "time": "2026-11-26T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/spotify-pipeline"],
    "detail": {},
}


@pytest.fixture
def deployed(aws: Aws, make_simulator: SimulatorFactory, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """What the template deploys, recreated in moto: queue + DLQ, secret, environment."""
    server = make_simulator(playlists=7, items_per_playlist=30)
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="spotify-dlq")["QueueUrl"]  # type: ignore[attr-defined]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # type: ignore[attr-defined]
    queue = sqs.create_queue(
        QueueName="spotify-batches",
        Attributes={  # type: ignore[attr-defined]
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
        },
    )["QueueUrl"]
    secrets = aws.client("secretsmanager")
    secrets.create_secret(
        Name="spotify/credentials",
        SecretString=json.dumps(  # type: ignore[attr-defined]
            {"client_id": server.client_id, "client_secret": server.client_secret}
        ),
    )
    env = {
        "SPOTIFY_API_URL": server.api_url,
        "SPOTIFY_ACCOUNTS_URL": server.accounts_url,
        "SPOTIFY_SECRET_ID": "spotify/credentials",
        "S3_BUCKET_NAME": aws.bucket,
        "SPOTIFY_PIPELINE_QUEUE_URL": queue,
        "SPOTIFY_PLAYLIST_IDS": ",".join(server.playlist_ids()),
        "POWERTOOLS_METRICS_NAMESPACE": "SpotifyPipeline",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_SECRET", raising=False)
    return server, queue


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:spotify-batches",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def test_plan_extract_transform(
    aws: Aws,
    deployed: tuple[Any, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from spotify_pipeline.aws import handlers

    server, queue = deployed
    planned = handlers.plan(SCHEDULED_EVENT, FakeLambdaContext())
    assert planned == {"playlists": 7, "batches": 1}  # batches of 10
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]  # type: ignore[attr-defined]
    queued = [pid for m in messages for pid in json.loads(m["Body"])["playlists"]]
    assert sorted(queued) == sorted(server.playlist_ids())

    # One batch fails (its playlist keeps answering 500); the others land and are not affected.
    bad = server.playlist_ids()[0]
    server.faults.add(Fault("500", count=1000, path_prefix=f"/v1/playlists/{bad}"))
    # One retry, not the default six (~12 s of backoff): what is proved is that a batch that keeps failing
    # is reported alone, not how often it is retried (tests/extract does that).
    (tmp_path / "one-retry.toml").write_text("max_retries = 1\n")
    monkeypatch.setenv("SPOTIFY_PIPELINE_CONFIG", str(tmp_path / "one-retry.toml"))
    batches = [
        {"MessageId": f"m-{i}", "ReceiptHandle": f"r-{i}", "MD5OfBody": "x", "Body": json.dumps({"playlists": [pid]})}
        for i, pid in enumerate(server.playlist_ids())
    ]
    response = handlers.extract(sqs_event(batches), FakeLambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}

    result = handlers.transform(SCHEDULED_EVENT, FakeLambdaContext())
    assert result["rows"]["playlists"] == 6
    with QueryEngine(open_catalog(f"s3://{aws.bucket}/lake")) as engine:
        stored = {r[0] for r in engine.execute("SELECT playlist_id FROM playlists").rows}
    assert stored == set(server.playlist_ids()[1:])

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [e for e in emitted if "_aws" in e]
    names = {m["Name"] for e in emf for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ApiRequests", "ItemsExtracted", "Retries", "RateLimited", "QualityFailures", "PlaylistsPlanned"} <= names
    assert server.client_secret not in json.dumps(emitted)


def test_handler_reads_credentials_from_secrets_manager(deployed: tuple[Any, str]) -> None:
    from spotify_pipeline.aws.handlers import settings_from_environment

    server, _ = deployed
    settings = settings_from_environment()
    assert settings.client_id == server.client_id and settings.client_secret.reveal() == server.client_secret
    assert "sim-client-secret" not in repr(settings) and settings.lake.startswith("s3://")


def test_user_login_lives_in_secrets_manager_and_rotation_updates_it(
    aws: Aws, make_simulator: SimulatorFactory, tmp_path: Any
) -> None:
    from spotify_pipeline import pipeline
    from spotify_pipeline.extract.user_auth import SecretsManagerTokenStore, TokenStore

    from ..conftest import settings_for
    from ..extract.test_user_login import do_login

    server = make_simulator(playlists=4, items_per_playlist=20, mode="development")
    server.rotate_refresh_tokens = True
    local = do_login(server, tmp_path)
    login = json.loads(local.path.read_text())
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="spotify/login", SecretString=json.dumps(login))  # type: ignore[attr-defined]
    settings = settings_for(server, f"s3://{aws.bucket}/lake", login_secret="spotify/login")
    report = pipeline.run(settings, [], sources=["my-playlists"], extract_only=True, lock=False)
    assert report.extract is not None and report.extract.user_id == server.login_user
    stored = json.loads(secrets.get_secret_value(SecretId="spotify/login")["SecretString"])  # type: ignore[attr-defined]
    assert stored["refresh_token"] != login["refresh_token"]  # rotated, and saved back to the secret
    assert not server._refresh[stored["refresh_token"]]["revoked"]
    assert isinstance(SecretsManagerTokenStore("spotify/login"), TokenStore)


def test_recently_played_on_a_schedule_costs_one_request_when_nothing_is_new(
    aws: Aws, deployed: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from spotify_pipeline.aws import handlers
    from spotify_pipeline.extract.state import ExtractState
    from spotify_pipeline.lake.storage import open_storage

    from ..extract.test_user_login import do_login

    server, _ = deployed
    login = json.loads(do_login(server, tmp_path).path.read_text())
    aws.client("secretsmanager").create_secret(Name="spotify/login", SecretString=json.dumps(login))  # type: ignore[attr-defined]
    monkeypatch.setenv("SPOTIFY_PIPELINE_LOGIN_SECRET", "spotify/login")
    monkeypatch.setattr(handlers, "_LAKE", None)
    first = handlers.recently_played(SCHEDULED_EVENT, FakeLambdaContext())
    assert first["ran"] and first["run_id"]  # no cursor yet: a run (extract only; the transform publishes)
    cursors = ExtractState.load(open_storage(f"s3://{aws.bucket}/lake")).cursors
    assert f"recently_played:{server.login_user}" in cursors
    server.stats.reset()
    quiet = handlers.recently_played(SCHEDULED_EVENT, FakeLambdaContext())
    assert not quiet["ran"] and server.stats.api_requests == 1 == server.stats.by_route["recently_played"]
    server.add_plays(server.login_user, 5)
    again = handlers.recently_played(SCHEDULED_EVENT, FakeLambdaContext())
    assert again["ran"] and "5 new plays" in again["line"]
