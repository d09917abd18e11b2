"""The worker: the balancer and the data path download → parse → load → geocode."""
