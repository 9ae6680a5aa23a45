# io_uring-tcp transport: TCP driven through io_uring (liburing >= 2.3).
PKGS_io_uring-tcp := liburing
