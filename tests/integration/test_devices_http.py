"""Seed 004's Python SDK example end to end against a real `kiln serve`: list the devices, load
`digits-diffusion` onto cpu-0 (gpu-0 in the document), generate an image and save it as a PNG. The document's
prompt and 1024x1024 are what an SDXL model takes; the digits model draws digits at up to 256x256, so the
example asks for a digit at that size (other prompts or sizes get a 400 naming the field)."""

import base64
from io import BytesIO
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.integration.test_tasks_http import serve
from tests.servers import stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class DeviceOperationsClient:  # the document's client, as written there
    def __init__(self, base_url, api_key):
        self.base_url = base_url
        self.headers = {'X-API-Key': api_key, 'Content-Type': 'application/json'}

    def get_devices(self):
        response = requests.get(f"{self.base_url}/device/list", headers=self.headers)
        return response.json()

    def load_model(self, device_id, model_path, model_type):
        data = {'modelPath': model_path, 'modelType': model_type, 'deviceId': device_id, 'loadingStrategy': 'optimal'}
        response = requests.post(f"{self.base_url}/model/load/{device_id}", json=data, headers=self.headers)
        return response.json()

    def generate_image(self, device_id, prompt, **kwargs):
        data = {'prompt': prompt, 'deviceId': device_id, **kwargs}
        response = requests.post(f"{self.base_url}/inference/execute/{device_id}", json=data, headers=self.headers)
        result = response.json()
        if result['success']:
            image_data = base64.b64decode(result['data']['results']['images'][0]['imageData'])
            return Image.open(BytesIO(image_data))
        raise Exception(f"Generation failed: {result['error']['message']}")


@pytest.fixture(scope="module")
def home(tmp_path_factory, built_workspace, kiln_home):
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.store import ModelStore

    home = tmp_path_factory.mktemp("devices-http")
    (home / "bentoml").symlink_to(kiln_home / "bentoml")
    with ModelStore(home / "models").stage("digits-diffusion", "f" * 64, "text-to-image", {"source": "train"}) as staging:
        DigitsDDPMRecipe.train(DiffusionHyperparameters(steps=2, batch_size=16, block_channels=(8, 16)), staging)
    return home


@pytest.fixture(scope="module")
def server(home):
    process, url, _ = serve(home, "serve-devices")
    try:
        yield url, (home / "admin.key").read_text().strip()
    finally:
        stop(process)


def test_the_python_sdk_example(server, tmp_path):
    url, key = server
    client = DeviceOperationsClient(f"{url}/api", key)
    devices = client.get_devices()
    assert "cpu-0" in [d['id'] for d in devices['data']]
    session = client.load_model('cpu-0', 'digits-diffusion', 'digits-diffusion')
    assert session['success'] is True and session['data']['sessionId']
    image = client.generate_image('cpu-0', 'A handwritten 7', width=256, height=256, steps=20)
    image.save(tmp_path / 'generated_image.png')
    assert Image.open(tmp_path / 'generated_image.png').size == (256, 256)
    with pytest.raises(Exception, match="Generation failed: Invalid width"):
        client.generate_image('cpu-0', 'A handwritten 7', width=1024, height=1024, steps=20)
    unloaded = requests.delete(f"{url}/api/processing/sessions/{session['data']['sessionId']}",
                               headers=client.headers).json()
    assert unloaded['data']['status'] == "unloaded"


JS_EXAMPLE = Path(__file__).with_name("devices_sdk_example.js")


def test_the_javascript_sdk_example(server, tmp_path):
    """The document's Node.js client with axios (installed from npm into a temporary folder)."""
    import shutil
    import subprocess

    url, key = server
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(tmp_path), "axios@1.21.1"],
                               capture_output=True, text=True, timeout=300)
    if installed.returncode != 0:
        pytest.skip(f"axios could not be installed from npm: {installed.stderr[-300:]}")
    script = tmp_path / "example.js"
    script.write_text(JS_EXAMPLE.read_text().replace("http://localhost:5000/api", f"{url}/api")
                      .replace("your-api-key", key))
    ran = subprocess.run(["node", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "Image saved as generated_image.png" in ran.stdout, ran.stdout + ran.stderr
    assert "Error:" not in ran.stderr + ran.stdout
    assert Image.open(tmp_path / "generated_image.png").size == (256, 256)
