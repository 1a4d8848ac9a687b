# Rendered by buildlib (render:nginx) from .env into default.conf; nginx's own $variables stay as they are.
server {
    listen 80;
    server_name {{ SERVER_NAME }};
    location /api/ { proxy_pass http://backend:{{ BACKEND_PORT }}/; proxy_set_header Host $host; }
    location /jupyter/ { proxy_pass http://jupyterhub:{{ HUB_PORT }}/; }
    location / { proxy_pass http://frontend:80/; }
}
