"""Revisit edge: camera frames to `FaceDetected` events on NATS JetStream, buffered in a local outbox.

`python -m edge run --source ...`; the flow is sources -> detector -> quality/tracker/best_crop ->
align -> embedder -> outbox -> relay -> publisher. `bootstrap.py` is the only place things are built.
"""
