#!/bin/sh
# prints its arguments' count and the WHO variable handed over through {{.Vars}}
echo "hello ${WHO:-nobody} from $(basename "$0") with $# args"
