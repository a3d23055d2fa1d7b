"""Dagster's webserver GraphQL API: the one place Kiln speaks it (the server reaches Dagster this way,
never by importing the pipelines)."""

from __future__ import annotations

from typing import Any

from kiln.errors import KilnError


class DagsterGraphQL:
    """The Dagster webserver GraphQL calls Kiln needs: is it up, launch a job or an asset, follow and terminate a run."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def available(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/server_info", timeout=1.5).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=self.timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise KilnError(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def asset_job(self, asset: str) -> dict[str, str]:
        """The location, repository and job that materialize ``asset``."""
        data = self.query(
            """query { workspaceOrError { __typename ... on Workspace { locationEntries { name
                 locationOrLoadError { __typename ... on RepositoryLocation { repositories { name
                   assetNodes { assetKey { path } jobNames } } } ... on PythonError { message } } } } } }"""
        )
        workspace = data["workspaceOrError"]
        for location in workspace.get("locationEntries", []):
            loaded = location.get("locationOrLoadError") or {}
            for repository in loaded.get("repositories", []):
                for node in repository["assetNodes"]:
                    if node["assetKey"]["path"] == [asset]:
                        jobs = node["jobNames"]
                        job = "__ASSET_JOB" if "__ASSET_JOB" in jobs else jobs[0]
                        return {"repositoryLocationName": location["name"], "repositoryName": repository["name"], "jobName": job}
        raise KilnError(f"The Dagster workspace at {self.url} has no asset '{asset}'")

    def job_selector(self, job: str) -> dict[str, str]:
        """The location and repository that hold ``job``."""
        data = self.query(
            """query { workspaceOrError { __typename ... on Workspace { locationEntries { name
                 locationOrLoadError { __typename ... on RepositoryLocation { repositories { name jobs { name } } } } } } } }"""
        )
        for location in data["workspaceOrError"].get("locationEntries", []):
            for repository in (location.get("locationOrLoadError") or {}).get("repositories", []):
                if any(j["name"] == job for j in repository["jobs"]):
                    return {"repositoryLocationName": location["name"], "repositoryName": repository["name"], "jobName": job}
        raise KilnError(f"The Dagster workspace at {self.url} has no job '{job}'")

    def launch_job(self, job: str, partition: str | None, run_config: dict[str, Any], tags: dict[str, str]) -> str:
        run_tags = [{"key": k, "value": v} for k, v in tags.items()]
        if partition:
            run_tags.append({"key": "dagster/partition", "value": partition})
        return self._launch({"selector": self.job_selector(job), "runConfigData": run_config,
                             "executionMetadata": {"tags": run_tags}})

    def terminate(self, run_id: str) -> None:
        data = self.query(
            """mutation Terminate($id: String!) { terminateRun(runId: $id) { __typename
                 ... on TerminateRunFailure { message } ... on PythonError { message } } }""", {"id": run_id})
        result = data["terminateRun"]
        if result["__typename"] not in ("TerminateRunSuccess", "TerminateRunFailure"):  # failure: already finished
            raise KilnError(f"Dagster could not terminate run {run_id}: {result.get('message')}")

    def run_progress(self, run_id: str) -> tuple[str, int, int]:
        """(status, steps ended, steps planned) of a run."""
        data = self.query(
            """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status stepKeysToExecute
                 stepStats { stepKey status } } } }""", {"id": run_id})
        run = data["runOrError"]
        if run.get("__typename") != "Run":
            return "UNKNOWN", 0, 0
        stats = run.get("stepStats") or []
        ended = sum(1 for s in stats if s.get("status") in ("SUCCESS", "FAILURE", "SKIPPED"))
        return run["status"], ended, len(run.get("stepKeysToExecute") or stats)

    def launch_asset(self, asset: str, partition: str, config: dict[str, Any] | None = None) -> str:
        """Launch a run materializing ``asset[partition]``; ``config`` is that asset's run config (its ``config:``)."""
        selector = {**self.asset_job(asset), "assetSelection": [{"path": [asset]}]}
        run_config = {"ops": {asset: {"config": config}}} if config else {}
        return self._launch({"selector": selector, "runConfigData": run_config,
                             "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition},
                                                            {"key": "kiln/launched_by", "value": "api"}]}})

    def _launch(self, params: dict[str, Any]) -> str:
        data = self.query(
            """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
                 ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message }
                 ... on RunConfigValidationInvalid { errors { message } }
                 ... on Error { message } } }""",
            {"params": params},
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise KilnError(f"Dagster refused the run ({result['__typename']}): {detail}")
        return result["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        data = self.query(
            "query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }", {"id": run_id}
        )
        run = data["runOrError"]
        return run.get("status", "UNKNOWN")
