# RDMA transport (soft-RoCE or real hardware): verbs + rdma_cm.
PKGS_rdma := libibverbs librdmacm
