"""The scoring rules of Egashira et al. (Radiology 2017): reading format, policy, counting, scores."""
