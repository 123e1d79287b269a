# thanos-sidecar as a container: the static binary and nothing else.
#
#   scripts/build-static                      # writes dist/thanos-sidecar
#   docker build -t thanos-sidecar .
#   docker run --rm thanos-sidecar sidecar --prometheus.url=http://prometheus:9090 ...
#
# FROM scratch works because the binary is static (musl, gRPC's C core and
# BoringSSL linked in) and carries its TLS roots (webpki-roots): no libc, no
# /etc/ssl, no shell in the image.
FROM scratch
COPY dist/thanos-sidecar /thanos-sidecar
# Thanos' images run as nobody too; the TSDB volume must be readable by it
# (and writable, for the shipper's state file and staging links).
USER 65534:65534
# The same ports as `thanos sidecar`: HTTP (probes, /metrics) and gRPC.
EXPOSE 10902 10901
ENTRYPOINT ["/thanos-sidecar"]
CMD ["sidecar", "--help"]
