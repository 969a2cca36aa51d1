#!/bin/sh
# Stands in for the Check suites when configure did not find Check.
echo "The Check unit test framework was not found when crew was configured."
echo "Install it (on Debian or Ubuntu: apt-get install check pkg-config),"
echo "then run ./configure again and 'make check'."
exit 99
