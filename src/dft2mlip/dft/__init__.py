"""DFT labels: settings, inputs, runs and outputs of each engine, and what is built on them.

Read bottom-up; a module imports only from its own layer or below (``tests/test_layout.py``
checks this and that ``src/`` has no import cycle):

1. what every engine shares, knowing no engine: ``outputs`` (output frames, run outputs,
   relaxation outcomes, file helpers), ``hubbard`` (DFT+U in each code's form), ``magnetism``,
   ``pseudo``, ``pw_files``, ``run``
   (launching a program); ``settings`` (QE's settings object);
2. one module per engine, owning its settings, input writing, output parsing and
   relaxations: ``qe`` (pw.x), ``vasp`` (which takes its k-point mesh rule from ``qe``);
3. execution under custodian: ``handlers``, ``execute``;
4. the registry, one object per engine: ``engines`` (:func:`~dft2mlip.dft.engines.get_engine`);
5. engine-independent steps: ``labels`` (write, run, parse one label), ``importing`` (finished
   runs and extxyz from elsewhere), ``convergence`` (the cutoff and k-point study);
6. ``relax`` (the DFT-relaxed reference cell, run like a label).
"""
