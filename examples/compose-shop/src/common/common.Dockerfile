# What every shop service runs on.
FROM alpine:3.20
COPY src/common/ /opt/shop/common/
