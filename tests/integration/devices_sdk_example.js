// Seed 004's JavaScript/Node.js SDK example as the document has it, with cpu-0 for gpu-0, the digits model
// for SDXL, and a prompt and size that model draws (test_devices_http.py fills in the URL and the key).
const axios = require('axios');
const fs = require('fs');

class DeviceOperationsClient {
    constructor(baseUrl, apiKey) {
        this.baseUrl = baseUrl;
        this.headers = {
            'X-API-Key': apiKey,
            'Content-Type': 'application/json'
        };
    }

    async getDevices() {
        const response = await axios.get(`${this.baseUrl}/device/list`,
                                       { headers: this.headers });
        return response.data;
    }

    async loadModel(deviceId, modelPath, modelType) {
        const data = {
            modelPath,
            modelType,
            deviceId,
            loadingStrategy: 'optimal'
        };
        const response = await axios.post(`${this.baseUrl}/model/load/${deviceId}`,
                                        data, { headers: this.headers });
        return response.data;
    }

    async generateImage(deviceId, prompt, options = {}) {
        const data = {
            prompt,
            deviceId,
            ...options
        };
        const response = await axios.post(`${this.baseUrl}/inference/execute/${deviceId}`,
                                        data, { headers: this.headers });
        return response.data;
    }

    async saveImageFromResponse(response, filename) {
        if (response.success) {
            const imageData = response.data.results.images[0].imageData;
            const buffer = Buffer.from(imageData, 'base64');
            fs.writeFileSync(filename, buffer);
            return filename;
        } else {
            throw new Error(`Generation failed: ${response.error.message}`);
        }
    }
}

// Usage
async function main() {
    const client = new DeviceOperationsClient('http://localhost:5000/api', 'your-api-key');

    try {
        // Get devices
        const devices = await client.getDevices();
        console.log('Available devices:', devices.data.map(d => d.id));

        // Load model
        const session = await client.loadModel('cpu-0', 'digits-diffusion', 'digits-diffusion');
        console.log('Model loaded with session ID:', session.data.sessionId);

        // Generate image
        const result = await client.generateImage('cpu-0', 'A handwritten 3', {
            width: 256,
            height: 256,
            steps: 20
        });

        await client.saveImageFromResponse(result, 'generated_image.png');
        console.log('Image saved as generated_image.png');

    } catch (error) {
        console.error('Error:', error.message);
        process.exitCode = 1;
    }
}

main();
