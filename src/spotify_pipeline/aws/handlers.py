"""Lambda handlers. Thin: each turns its event into settings and calls `Lake`, exactly as the CLI does.

    plan       (EventBridge Scheduler)  playlists -> batches -> SQS (fan-out, bounded by the queue's consumer)
    extract    (SQS)                    one batch of playlists -> raw zone on S3; a failed batch is retried,
                                        then lands in the dead-letter queue; the other batches are unaffected
    transform  (EventBridge Scheduler)  raw zone -> quality gate -> Glue/Iceberg tables
    recently_played (EventBridge Scheduler, every 5 minutes)  one check of the user's recently played (one
                                        request when nothing is new); new plays -> raw zone, published by
                                        the next transform; a gap is logged and recorded in listening_gaps

Fan-out is SQS with a dead-letter queue rather than Step Functions: per-message retries and the DLQ come
built in, the consumer's maximum concurrency bounds the load on Spotify's rate limit, and there is no state
machine to pay for or keep in sync with the code.

Logging, metrics and secrets use AWS Lambda Powertools: JSON logs, CloudWatch Embedded Metric Format
(items, requests, retries, 429s, duration, quality failures), Spotify credentials from Secrets Manager.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters

from ..config import Settings, load_settings
from ..errors import PipelineError, QualityError
from ..ids import parse_playlist_refs
from ..lake_api import Lake
from ..results import ExtractResult

logger = Logger(service="spotify-pipeline")
metrics = Metrics(namespace="SpotifyPipeline", service="spotify-pipeline")
BATCH_SIZE = int(os.environ.get("SPOTIFY_PIPELINE_BATCH_SIZE", "10"))


def settings_from_environment() -> Settings:
    """Settings from the function's environment; Spotify credentials from the Secrets Manager secret named
    by SPOTIFY_SECRET_ID (JSON with client_id and client_secret), else from the environment."""
    overrides: dict[str, Any] = {}
    secret_id = os.environ.get("SPOTIFY_SECRET_ID")
    if secret_id:
        secret = parameters.get_secret(secret_id, transform="json", max_age=300)
        overrides.update(client_id=secret["client_id"], client_secret=secret["client_secret"])
    return load_settings(overrides)


def _record_metrics(result: ExtractResult) -> None:
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=result.seconds)
    metrics.add_metric(name="ItemsExtracted", unit=MetricUnit.Count, value=result.items)
    metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=result.requests.total)
    metrics.add_metric(name="Retries", unit=MetricUnit.Count, value=result.requests.retries)
    metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=result.requests.rate_limited)
    metrics.add_metric(name="PlaylistsFailed", unit=MetricUnit.Count, value=result.playlists.failed)


@metrics.log_metrics
@logger.inject_lambda_context
def plan(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Split the configured playlists into batches and queue one message per batch."""
    import boto3

    from ..lake.s3 import aws_endpoint

    refs = event.get("playlists") or os.environ.get("SPOTIFY_PLAYLIST_IDS", "").split(",")
    ids = parse_playlist_refs(refs)
    batches = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint())
    queue = os.environ["SPOTIFY_PIPELINE_QUEUE_URL"]
    for start in range(0, len(batches), 10):  # SendMessageBatch takes 10 entries at most
        entries = [
            {"Id": str(start + n), "MessageBody": json.dumps({"playlists": batch})}
            for n, batch in enumerate(batches[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    metrics.add_metric(name="PlaylistsPlanned", unit=MetricUnit.Count, value=len(ids))
    logger.info("planned", extra={"playlists": len(ids), "batches": len(batches)})
    return {"playlists": len(ids), "batches": len(batches)}


@metrics.log_metrics
@logger.inject_lambda_context
def extract(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Extract each queued batch; report the failed ones back to SQS (partial batch response)."""
    lake = Lake.open(settings=settings_from_environment())
    failures = []
    for record in event.get("Records", []):
        message_id = record["messageId"]
        try:
            ids = parse_playlist_refs(json.loads(record["body"])["playlists"])
            result = lake.extract(ids, lock=False)  # batches run side by side; only the transform publishes
        except (PipelineError, ValueError, KeyError) as exc:
            logger.error("batch failed", extra={"message_id": message_id, "error": str(exc)})
            failures.append({"itemIdentifier": message_id})
            continue
        _record_metrics(result)
        if result.status != "succeeded":
            error = result.stop_reason or "; ".join(result.playlists.failures.values())
            logger.warning(
                "batch incomplete", extra={"message_id": message_id, "status": result.status, "error": error}
            )
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


@metrics.log_metrics
@logger.inject_lambda_context
def transform(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Publish what the extract batches landed; a failed quality check fails the invocation (alarmed)."""
    lake = Lake.open(settings=settings_from_environment())
    started = time.monotonic()
    try:
        result = lake.transform()
    except QualityError as exc:
        metrics.add_metric(name="QualityFailures", unit=MetricUnit.Count, value=len(exc.checks))
        logger.error("quality gate failed", extra={"checks": exc.checks})
        raise
    metrics.add_metric(name="QualityFailures", unit=MetricUnit.Count, value=0)
    metrics.add_metric(name="TransformDuration", unit=MetricUnit.Seconds, value=time.monotonic() - started)
    return {"run_id": result.run_id, "raw_runs": result.raw_runs, "rows": result.rows}


@metrics.log_metrics
@logger.inject_lambda_context
def maintain(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Daily lake maintenance on a schedule: compact the small files runs append, expire snapshots past
    `table_history_days` (maintenance.py), under the lake's S3 lock so it never overlaps a transform."""
    # No Spotify credentials needed: the function is not given the secret.
    result = Lake.open(settings=load_settings({})).maintain()
    metrics.add_metric(name="FilesCompacted", unit=MetricUnit.Count, value=result.files_compacted)
    metrics.add_metric(name="SnapshotsExpired", unit=MetricUnit.Count, value=result.expiry.snapshots)
    metrics.add_metric(name="MaintenanceDuration", unit=MetricUnit.Seconds, value=result.seconds)
    return result.as_dict()


_POLLER: Any = None  # kept across warm invocations: the access token stays in memory between checks
_LAKE: Any = None  # kept across warm invocations: the poller's access token stays in memory between checks


@metrics.log_metrics
@logger.inject_lambda_context
def recently_played(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One poll of recently played (needs the user login in SPOTIFY_PIPELINE_LOGIN_SECRET). Extract only:
    the scheduled transform publishes, so this function never waits for the lake's lock."""
    global _LAKE
    if _LAKE is None:
        _LAKE = Lake.open(settings=settings_from_environment())
    result = _LAKE.poller(extract_only=True).poll_once()
    metrics.add_metric(name="RecentlyPlayedRuns", unit=MetricUnit.Count, value=int(result.ran))
    if result.report is not None and result.report.extract is not None:
        _record_metrics(ExtractResult.of(result.report.extract))
        gaps = result.report.extract.gaps if result.report.extract else []
        metrics.add_metric(name="ListeningGaps", unit=MetricUnit.Count, value=len(gaps))
        for gap in gaps:
            logger.warning("listening gap", extra=gap)
    logger.info("polled", extra={"line": result.line})
    return {"ran": result.ran, "run_id": result.report.run_id if result.report else None, "line": result.line}
