"""Vision without a framework: image decoding with limits, PIL/numpy preprocessing, image classifiers,
object detectors, face detection and descriptors, the face vector index and records, and the camera
stream's newest-frame-wins slot. Boxes are ``[x, y, width, height]`` in pixels of the uploaded image
(after EXIF orientation) everywhere."""
