"""Files: uploads and the outputs of tasks, owned by whoever made them, checked against their bytes."""
