# JupyterLab as `make lab` starts it (jupyter lab --config=jupyter_lab_config.py, from this folder):
# on the loopback interface only, opening the explore notebook, asking nothing of the network (no
# news feed, no update check, no extension catalogue).
import os

c = get_config()  # noqa: F821 (provided by Jupyter when it reads this file)
c.ServerApp.ip = "127.0.0.1"
c.LabApp.default_url = "/lab/tree/explore.ipynb"
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
# Containers and CI machines run as root, where Jupyter refuses to start unless told; the server
# listens on 127.0.0.1 with a token either way.
c.ServerApp.allow_root = os.geteuid() == 0
