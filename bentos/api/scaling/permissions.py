"""The ML Controller's lines of the permission table: reading predictions and history is read;
retraining changes how every model scales, so it is an admin action (like POST /autoscaler/scale)."""

from bentos.api.http.permissions import Rules, admin, read

RULES: Rules = {
    "GET /ml/scaling/predictions": read(),
    "GET /ml/scaling/history": read(),
    "POST /ml/model/retrain": admin(),
}
