-- title: Data health
-- description: The last runs: status, requests, items, rows per table, failed quality checks, and why a run failed.
SELECT r.run_id, r.status, r.started_at, r.api_requests, r.items_extracted,
       (SELECT count(*) FROM quality_results q WHERE q.run_id = r.run_id AND NOT q.passed) AS failed_checks,
       (SELECT count(*) FROM quality_results q WHERE q.run_id = r.run_id) AS checks,
       r.rows_per_table, r.error
FROM pipeline_runs r
ORDER BY r.started_at DESC
LIMIT 10
