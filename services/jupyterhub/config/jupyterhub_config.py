c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://:8000"
c.Spawner.default_url = "/lab"
