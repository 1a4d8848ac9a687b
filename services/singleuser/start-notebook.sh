#!/bin/sh
echo "starting notebook for $(cat /etc/notebook-user)"
