"""Dagster's webserver GraphQL API: the one place Kiln speaks it (the server reaches Dagster this way,
never by importing the pipelines)."""

from __future__ import annotations

from typing import Any

from kiln.errors import KilnError


class DagsterGraphQL:
    """The few Dagster webserver GraphQL calls Kiln needs: is it up, launch an asset run, run status."""

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

    def launch_asset(self, asset: str, partition: str) -> str:
        selector = {**self.asset_job(asset), "assetSelection": [{"path": [asset]}]}
        data = self.query(
            """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
                 ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message }
                 ... on RunConfigValidationInvalid { errors { message } }
                 ... on Error { message } } }""",
            {"params": {"selector": selector, "runConfigData": {},
                        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition},
                                                       {"key": "kiln/launched_by", "value": "api"}]}}},
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
