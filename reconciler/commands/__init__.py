"""The commands as library functions: typed inputs in, typed results out; the CLI only parses, prints, exits.

workspace     Settings: a command's flags, environment and reconciler.yaml resolved; the manifests, the
              state's backend and the Novita endpoint (the in-process simulator under --sim)
targets       --target / --replace checked and resolved (a Scope, returned to the command)
plan_apply    plan and apply; saved plans' origins
run           the applier on an event loop, Ctrl-C and SIGTERM as its stop
outputs_sync  apply's free copies to and from the outputs remote, and `pull`
gallery       `gallery`, and its refresh after apply
state_cmds    refresh, import, state rm / pull / push / migrate / history / force-unlock
state_mv      state mv: a resource moved to another address in the state
costs         a plan's estimate, the budget, the account's balance; apply's check before paying
explain       explain: what an identity is made of, where it is held, what apply does
skeleton      `init`: the project skeleton
"""
