"""Seed 000's model management routes on fakes: the lists, downloads (validation), manage actions."""

import pytest

FOUR = [1, 2, 3, 4]


def test_models_lists_served_and_catalog_models_with_pool_state(client):
    client.post("/predict", json={"model_name": "adder", "inputs": FOUR})
    body = client.get("/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert models["adder"]["loaded"] and models["adder"]["instances"] == 1 and models["adder"]["parameters"] == 4
    assert models["adder"]["served"] and models["adder"]["dagster_run_id"] == "dagster-0001"
    assert models["unbuilt"]["served"] is False and models["unbuilt"]["loaded"] is False
    assert "adder" in body["loaded_models"] and set(body["available_models"]) >= {"adder", "shouter"}


def test_available_is_the_catalog(client):
    body = client.get("/models/available").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"adder", "unbuilt"} and by_name["adder"]["served"] and not by_name["unbuilt"]["downloaded"]
    assert body["categories"]["text embeddings"] == ["unbuilt"]


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"name": "unbuilt", "model_id": "something/else"}, 400, "model_id"),
        ({"name": "adder"}, 400, "trained"),
        ({"name": "brand-new"}, 422, "source"),
        ({"name": "Bad Name!", "source": "huggingface", "model_id": "x/y", "task": "t"}, 422, "name"),
        ({"name": "x", "source": "ftp", "model_id": "x/y", "task": "t"}, 422, "source"),
        ({"source": "huggingface"}, 422, "name"),
    ],
)
def test_bad_downloads_name_the_problem(client, server, body, status, needle):
    response = client.post("/models/download", json=body, headers=server.admin)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_unknown_download_id_is_404(client):
    response = client.get("/models/download/status/does-not-exist")
    assert response.status_code == 404 and response.json()["success"] is False


def test_managed_lists_pools_and_downloads(client):
    client.post("/predict", json={"model_name": "adder", "inputs": FOUR})
    managed = client.get("/models/managed").json()
    assert managed["models"]["adder"]["loaded"] and managed["models"]["adder"]["requests"] >= 1
    assert isinstance(managed["downloads"], list)


def test_manage_unload_load_and_retry(client, server):
    admin = server.admin
    manage = lambda action: client.post("/models/manage", params={"action": action, "model_name": "adder"}, headers=admin)  # noqa: E731
    assert manage("unload").json()["loaded"] is False
    assert manage("load").json()["loaded"] is True
    assert manage("retry").json()["loaded"] is True
    optimized = manage("optimize")  # the adder has no torch Linear layers to quantize
    assert optimized.status_code == 409 and "Linear" in optimized.json()["error"]


@pytest.mark.parametrize(
    "params, status",
    [
        ({"action": "explode", "model_name": "adder"}, 422),
        ({"action": "load", "model_name": "nope"}, 404),
        ({"action": "load"}, 422),
    ],
)
def test_bad_manage_requests(client, server, params, status):
    response = client.post("/models/manage", params=params, headers=server.admin)
    assert response.status_code == status and response.json()["success"] is False


def test_manage_needs_an_admin_credential_even_with_auth_off(client):
    response = client.post("/models/manage", params={"action": "unload", "model_name": "adder"})
    assert response.status_code == 401 and "admin.key" in response.json()["error"]
