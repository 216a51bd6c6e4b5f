# A QUIC-LB load balancer in front of a fleet of pyquic servers (balancer.py).
