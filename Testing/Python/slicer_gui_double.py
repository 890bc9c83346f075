"""TEST DOUBLE of the GUI toolkit (Qt via PythonQt) and of Slicer's application layer, so that the
module's widget (DPOScoring.py) can be loaded and driven headless. It is NOT Slicer.

What is real: the MRML scene and logics (slicer-core), ``slicer.util.VTKObservationMixin`` (the
slicer-core copy of Slicer's code), the module's .ui file (parsed here: every widget it names is
created with its class) and all of DPOScoringLib.

What is faked, and how it mirrors Slicer 5.8-5.12:
* widgets: each class knows the signals it has in Qt 5.15/CTK/qMRMLWidgets (``SIGNALS``);
  ``connect`` to an unknown signal fails, ``emit`` calls the slots in connection order, as Qt does;
* ``parameterNodeWrapper``: values live in the scene's vtkMRMLScriptedModuleNode (so its Modified
  event is real) and ``connectGui`` connects the .ui widgets carrying ``SlicerParameterName`` AFTER
  the module's own connections (Slicer connects them when the widget calls ``connectGui``);
* ``slicer.util.tryWithErrorDisplay`` shows the error and re-raises (Base/Python/slicer/util.py);
* ``qt.QProcess`` records what it was asked to start; tests emit its signals;
* ``qt.QTimer.singleShot`` queues calls, run by ``run_timers`` in order, each after its delay (a
  call that schedules another, as a poll does, runs it in the same ``run_timers``).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

SIGNALS = {  # Qt 5.15 / CTK / qMRMLWidgets signals the module may connect to, per class
    "QPushButton": {"clicked(bool)", "toggled(bool)", "pressed()", "released()"},
    "QToolButton": {"clicked(bool)", "toggled(bool)", "pressed()", "released()"},
    "QCheckBox": {"clicked(bool)", "toggled(bool)", "stateChanged(int)"},
    "QComboBox": {"activated(int)", "currentIndexChanged(int)", "currentTextChanged(QString)"},
    "QLineEdit": {"textChanged(QString)", "editingFinished()", "returnPressed()"},
    "QTableWidget": {"itemChanged(QTableWidgetItem*)", "cellChanged(int,int)", "clicked(QModelIndex)"},
    "qMRMLTableView": {"clicked(QModelIndex)", "doubleClicked(QModelIndex)"},
    "qMRMLNodeComboBox": {"currentNodeChanged(vtkMRMLNode*)", "currentNodeIDChanged(QString)"},
    "ctkPathLineEdit": {"currentPathChanged(QString)", "validInputChanged(bool)"},
    "QProgressBar": {"valueChanged(int)"},
    "QProcess": {"readyReadStandardError()", "readyReadStandardOutput()", "finished(int,QProcess::ExitStatus)",
                 "errorOccurred(QProcess::ProcessError)", "started()"},
    "QShortcut": {"activated()", "activatedAmbiguously()"},
}


def _accepted(slot, given: int) -> int:
    """As PythonQt (PythonQtSignalReceiver): a Python slot gets as many of the signal's arguments
    as it accepts."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return given
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return given
    return min(given, sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)))


def _recorder(attribute, convert=None):
    """A Qt setter of the double: it records its one argument as ``attribute`` (converted)."""
    def setter(self, value):
        setattr(self, attribute, convert(value) if convert else value)
    return setter


class Widget:
    """A Qt widget of class ``qt_class``: properties as attributes, signals by signature."""

    def __init__(self, qt_class="QWidget", name="", parent=None):
        self.qt_class, self.name, self._parent = qt_class, name, parent
        self._slots: dict[str, list] = {}
        self.enabled, self.checked, self.text, self.value, self.currentPath = True, False, "", 0, ""
        self.format = ""
        self._items: list[tuple[str, object]] = []
        self._current = -1
        self._cells: dict[tuple[int, int], TableWidgetItem] = {}
        self.rows = self.columns = 0
        self.scene = self.tableNode = None
        self.selected = None

    def connect(self, signature, slot):
        if signature not in SIGNALS.get(self.qt_class, set()):
            raise AssertionError(f"{self.qt_class} {self.name!r} has no signal {signature}")
        self._slots.setdefault(signature, []).append(slot)
        return True

    def disconnect(self, signature, slot):
        self._slots[signature].remove(slot)

    def emit(self, signature, *args):
        for slot in list(self._slots.get(signature, [])):
            slot(*args[:_accepted(slot, len(args))])

    def setParent(self, parent):
        self._parent = parent

    def parent(self):
        return self._parent

    # QComboBox
    def addItem(self, text, data=None):
        self._items.append((text, data))
        if self._current < 0:
            self._current = 0

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self._items) if d == data), -1)

    def findText(self, text):
        return next((i for i, (t, _) in enumerate(self._items) if t == text), -1)

    def setCurrentIndex(self, index):
        if index != self._current:
            self._current = index
            self.emit("currentIndexChanged(int)", index)

    def currentIndex(self):
        return self._current

    @property
    def currentData(self):
        return self._items[self._current][1] if 0 <= self._current < len(self._items) else None

    @property
    def currentText(self):
        return self._items[self._current][0] if 0 <= self._current < len(self._items) else ""

    def choose(self, text):
        """The user picks ``text``: Qt emits currentIndexChanged, then activated."""
        index = self.findText(text)
        assert index >= 0, f"{self.name} has no item {text!r}"
        self.setCurrentIndex(index)
        self.emit("activated(int)", index)

    # QProgressBar, views, QTableWidget: setters that only record their value
    setFormat = _recorder("format")
    setMRMLScene = _recorder("scene")
    setMRMLTableNode = _recorder("tableNode")
    selectRow = _recorder("selected")
    setRowCount = _recorder("rows")
    setColumnCount = _recorder("columns")
    setHorizontalHeaderLabels = _recorder("horizontal", list)
    setVerticalHeaderLabels = _recorder("vertical", list)

    def setItem(self, row, column, item):
        item._table, item._row, item._column = self, row, column
        self._cells[(row, column)] = item

    def item(self, row, column):
        return self._cells[(row, column)]

    def resizeColumnsToContents(self):
        pass


class TableWidgetItem:
    def __init__(self, text=""):
        self._text, self._check, self._flags = text, None, None
        self._table = self._row = self._column = None

    def _changed(self):
        if self._table is not None:
            self._table.emit("itemChanged(QTableWidgetItem*)", self)

    def setText(self, text):
        self._text = text
        self._changed()

    def text(self):
        return self._text

    def setCheckState(self, state):
        self._check = state
        self._changed()

    def checkState(self):
        return self._check

    def setFlags(self, flags):
        self._flags = flags

    def row(self):
        return self._row

    def column(self):
        return self._column


class Process(Widget):
    """qt.QProcess double: records the request; tests emit readyRead/finished/errorOccurred."""

    FailedToStart, Crashed = 0, 1
    created: list = []

    def __init__(self, parent=None):
        super().__init__("QProcess", "process", parent)
        self.program, self.arguments, self.environment = None, [], None
        self.started = self.killed = self.deleted = False
        self.stderr = b""
        Process.created.append(self)

    def setProcessEnvironment(self, environment):
        self.environment = environment

    def setProgram(self, program):
        self.program = program

    def setArguments(self, arguments):
        self.arguments = list(arguments)

    def start(self):
        self.started = True

    def kill(self):
        self.killed = True

    def deleteLater(self):
        self.deleted = True

    def readAllStandardError(self):
        data, self.stderr = self.stderr, b""
        return data

    def write_stderr(self, text):
        self.stderr += text.encode()
        self.emit("readyReadStandardError()")


class ProcessEnvironment(dict):
    @staticmethod
    def systemEnvironment():
        return ProcessEnvironment()

    def insert(self, key, value):
        self[key] = value

    def value(self, key, default=""):
        return self.get(key, default)


class Shortcut(Widget):
    def __init__(self, keys, parent):
        if parent is None:
            raise AssertionError("QShortcut without a widget parent (Qt warns 'No widget parent')")
        super().__init__("QShortcut", keys.text, parent)

    def setEnabled(self, enabled):
        self.enabled = enabled


class KeySequence:
    def __init__(self, text):
        self.text = text


TIMERS: list = []
ERRORS: list = []
DIALOG_ANSWERS: dict = {}


def run_timers():
    while TIMERS:
        msec, call = TIMERS.pop(0)
        time.sleep(msec / 1000.0)  # the event loop runs meanwhile (here: the module's worker threads)
        call()


def make_qt():
    qt = types.ModuleType("qt")
    qt.QProcess, qt.QProcessEnvironment = Process, ProcessEnvironment
    qt.QShortcut, qt.QKeySequence, qt.QTableWidgetItem = Shortcut, KeySequence, TableWidgetItem
    qt.Qt = types.SimpleNamespace(ItemIsUserCheckable=16, ItemIsEnabled=32, Checked=2, Unchecked=0, WaitCursor=3)
    qt.QTimer = types.SimpleNamespace(singleShot=lambda msec, call: TIMERS.append((msec, call)))
    qt.QFileDialog = types.SimpleNamespace(
        getExistingDirectory=lambda parent, title, *a: DIALOG_ANSWERS.get("directory", ""))
    return qt


# --- the .ui -------------------------------------------------------------------------------------
def load_ui(path):
    """Every widget the .ui names, created with its class; SlicerParameterName properties kept."""
    tree = ET.parse(path)
    root_element = tree.getroot().find("widget")
    root = Widget(root_element.get("class"), root_element.get("name"))
    root.children = {}
    for element in root_element.iter("widget"):
        if element is root_element:
            continue
        widget = Widget(element.get("class"), element.get("name"), root)
        for prop in element.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                widget.parameterName = prop.find("string").text
        root.children[widget.name] = widget
    return root


@contextlib.contextmanager
def try_with_error_display(message=None, show=True, waitCursor=False):
    try:
        yield
    except Exception as error:
        ERRORS.append(f"{message}\n\n{error}" if message else str(error))
        raise


# --- parameterNodeWrapper ------------------------------------------------------------------------
class Choice:
    def __init__(self, choices):
        self.choices = list(choices)


def parameter_node_wrapper(cls):
    hints = get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name, None) for name in hints}

    class Wrapped:
        def __init__(self, node):
            object.__setattr__(self, "parameterNode", node)
            object.__setattr__(self, "_guis", {})
            for name, default in defaults.items():
                if not self._is_node(name) and not node.GetParameter(name) and default is not None:
                    node.SetParameter(name, str(default))

        @staticmethod
        def _is_node(name):
            hint = hints[name]
            hint = get_args(hint)[0] if get_origin(hint) is not None and get_args(hint) else hint
            return isinstance(hint, type) and hint.__name__.startswith("vtkMRML")

        def __getattr__(self, name):
            if name not in hints:
                raise AttributeError(name)
            node = object.__getattribute__(self, "parameterNode")
            if self._is_node(name):
                return node.GetNodeReference(name)
            value = node.GetParameter(name)
            return Path(value) if hints[name] is Path and value else (value if hints[name] is not Path else None)

        def __setattr__(self, name, value):
            node = self.parameterNode
            if self._is_node(name):
                node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
            else:
                node.SetParameter(name, "" if value is None else str(value))

        # forwarded to the node, as Slicer's wrapper does (parameterNodeWrapper/wrapper.py)
        def AddObserver(self, event, callback, priority=0.0):
            return self.parameterNode.AddObserver(event, callback, priority)

        def RemoveObserver(self, tag):
            self.parameterNode.RemoveObserver(tag)

        def StartModify(self):
            return self.parameterNode.StartModify()

        def EndModify(self, was_modifying):
            return self.parameterNode.EndModify(was_modifying)

        def connectGui(self, ui):
            tag = len(self._guis) + 1
            connections = []
            for widget in vars(ui).values():
                name = getattr(widget, "parameterName", None)
                if name is None:
                    continue
                if widget.qt_class == "QComboBox":
                    hint = hints[name]
                    choices = next(a.choices for a in getattr(hint, "__metadata__", ()) if isinstance(a, Choice))
                    if not widget._items:
                        for choice in choices:
                            widget.addItem(choice, choice)
                    widget.setCurrentIndex(widget.findText(getattr(self, name)))
                    slot = (lambda n, w: lambda index: setattr(self, n, w.currentText))(name, widget)
                    signature = "currentIndexChanged(int)"
                elif widget.qt_class == "qMRMLNodeComboBox":
                    slot = (lambda n: lambda node: setattr(self, n, node))(name)
                    signature = "currentNodeChanged(vtkMRMLNode*)"
                elif widget.qt_class == "ctkPathLineEdit":
                    slot = (lambda n: lambda text: setattr(self, n, text))(name)
                    signature = "currentPathChanged(QString)"
                else:
                    slot = (lambda n: lambda text: setattr(self, n, text))(name)
                    signature = "textChanged(QString)"
                widget.connect(signature, slot)
                connections.append((widget, signature, slot))
            self._guis[tag] = connections
            return tag

        def disconnectGui(self, tag):
            for widget, signature, slot in self._guis.pop(tag, []):
                widget.disconnect(signature, slot)

    return Wrapped


# --- installing the doubles ----------------------------------------------------------------------
class MainWindowAbsent:
    """--no-main-window: slicer.util.mainWindow() is None."""


def install(scene, module_dir: Path, main_window=None, temporary_path=None):
    """Puts the doubles into sys.modules / the real ``slicer`` package; returns an undo function."""
    import slicer

    saved_modules = {name: sys.modules.get(name) for name in
                     ("qt", "slicer.i18n", "slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule",
                      "DPOScoring")}
    saved_attributes = {name: getattr(slicer, name, None) for name in
                        ("mrmlScene", "app", "modules", "util", "i18n", "parameterNodeWrapper",
                         "ScriptedLoadableModule")}
    import slicer.util as real_util

    qt = make_qt()
    sys.modules["qt"] = qt
    util = types.ModuleType("slicer.util")
    util.VTKObservationMixin = real_util.VTKObservationMixin  # Slicer's own code (slicer-core copy)
    util.loadUI = load_ui
    util.childWidgetVariables = lambda root: types.SimpleNamespace(**root.children)
    util.mainWindow = lambda: main_window
    util.tryWithErrorDisplay = try_with_error_display
    util.errorDisplay = lambda text, *a, **k: ERRORS.append(text)
    util.showStatusMessage = lambda *a, **k: None
    util.getNodesByClass = lambda cls, scene=None: [scene_.GetNthNodeByClass(i, cls) for scene_ in [slicer.mrmlScene]
                                                     for i in range(scene_.GetNumberOfNodesByClass(cls))]
    util.confirmOkCancelDisplay = lambda *a, **k: DIALOG_ANSWERS.get("confirm", False)
    util.pip_install = lambda *a, **k: (_ for _ in ()).throw(AssertionError("pip_install called"))
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.Choice, wrapper.parameterNodeWrapper = Choice, parameter_node_wrapper

    segmentations, markups = scene._dpo_logics
    markups_calls = []

    class MarkupsLogicDouble:
        def __getattr__(self, name):
            return lambda *args: markups_calls.append((name, args))

    modules = types.SimpleNamespace(segmentations=types.SimpleNamespace(logic=lambda: segmentations),
                                    markups=types.SimpleNamespace(logic=lambda: MarkupsLogicDouble()))
    app = types.SimpleNamespace(testingEnabled=lambda: True, temporaryPath=temporary_path)

    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent
            self.moduleName = "DPOScoring"

        def setup(self):
            self.layout = types.SimpleNamespace(addWidget=lambda w: None)

        def resourcePath(self, relative):
            return str(module_dir / "Resources" / relative)

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            super().__init__()
            self.moduleName = "DPOScoring"

        def getParameterNode(self):  # as Slicer: the scene's singleton scripted module node
            node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is None:
                node = slicer.vtkMRMLScriptedModuleNode()
                node.SetSingletonTag(self.moduleName)
                node.SetName(self.moduleName)
                node = slicer.mrmlScene.AddNode(node)
            return node

    class ScriptedLoadableModuleTest(unittest.TestCase):  # as Slicer's: a unittest.TestCase
        def delayDisplay(self, message, msec=1000):
            pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    sys.modules.update({"slicer.i18n": i18n, "slicer.parameterNodeWrapper": wrapper,
                        "slicer.ScriptedLoadableModule": slm})
    sys.modules.pop("DPOScoring", None)
    slicer.mrmlScene, slicer.app, slicer.modules, slicer.util = scene, app, modules, util
    slicer.i18n, slicer.parameterNodeWrapper, slicer.ScriptedLoadableModule = i18n, wrapper, slm
    sys.modules["slicer.util"] = util
    Process.created.clear()
    TIMERS.clear()
    ERRORS.clear()
    DIALOG_ANSWERS.clear()

    def undo():
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        sys.modules["slicer.util"] = real_util
        for name, value in saved_attributes.items():
            if value is None and hasattr(slicer, name):
                delattr(slicer, name)
            elif value is not None:
                setattr(slicer, name, value)

    return undo, markups_calls
