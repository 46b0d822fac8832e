"""Reports through taskhub.sdk, the way a user's script would."""

import os

from taskhub import sdk

sdk.progress(10, "starting", stage="warmup")
with open(os.path.join(os.environ["TASKHUB_ARTIFACTS_DIR"], "out.txt"), "w", encoding="utf-8") as f:
    f.write("made by sdk_task\n")
sdk.artifact("out.txt", description="the output")
print("::taskhub:: {not json")  # malformed: stays a plain log line
print('::taskhub:: {"type": "no_such_type"}')  # unknown type: a plain log line too
sdk.progress(100, "done", stage="final")
sdk.result({"ok": True, "items": [1, 2, 3]})
