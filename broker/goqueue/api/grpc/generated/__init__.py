"""Code generated from ../goqueue.proto by scripts/gen_proto.sh; do not edit."""
