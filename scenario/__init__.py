"""A seeded district scenario (区 → 街道/乡镇 → 社区/村 → 网格 → 小区 → 楼栋 → 户) for `make up`
and the acceptance test.

`world` plans everything from a seed, without I/O: the place tree, households and people,
responsibility chains, checkpoints, and the simulated days (visits, inquiries, watches,
temperatures, tests, crossings, daily reports). `driver` sends the plan to the four
services through their public HTTP APIs and records what they answered; `truth` computes
the figures reporting must show from the plan and those answers.
"""
