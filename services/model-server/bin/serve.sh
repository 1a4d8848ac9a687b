#!/bin/sh
# Stand-in for the model server: says what it was built with.
cat /srv/model/arch /srv/model/auth /srv/model/STATE
