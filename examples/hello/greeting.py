"""The hello release's `greeting` action: the greeting its service gives, to whom the
parameter `to` names (default: the instance's own `name`), and the user it ran as."""

import json
import os
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    config = json.load(f)
parameters = json.load(sys.stdin)
to = parameters.get("to", config["name"])
json.dump({"greeting": f"Hello {to}!", "uid": os.getuid()}, sys.stdout)
