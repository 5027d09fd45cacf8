/*
 * kit-jupyter's JupyterLab extension: a `%%kitfile` cell holds a Kitfile (YAML), so its editor
 * highlights YAML instead of Python.
 *
 * How: a CodeMirror 6 editor extension (registered with JupyterLab's IEditorExtensionRegistry)
 * keeps a compartment per cell editor that holds JupyterLab's own YAML language at the highest
 * precedence while the cell's first non-blank line is the `%%kitfile` magic (IPython skips
 * leading blank lines the same way), and is empty otherwise: YAML wins over the notebook's
 * Python language while it applies, and Python is back as soon as the magic line is gone. The
 * YAML language comes from IEditorLanguageRegistry (the one `.yaml` files use) and is loaded on
 * the first `%%kitfile` cell, so nothing is bundled here and notebooks without one pay nothing.
 * Only cell editors of Python/IPython code cells take part: not Markdown or raw cells, and not
 * the file editor.
 *
 * Built with scripts/build-labextension into kit_jupyter/labextension/ (committed), which the
 * wheel installs as share/jupyter/labextensions/kit-jupyter/.
 */
import { IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { ViewPlugin } from '@codemirror/view';

const KITFILE_MAGIC = /^\s*%%kitfile(?:\s|$)/;
const CODE_MIMES = new Set(['text/x-ipython', 'text/x-python']);
const NONE = [];

/** Whether the first non-blank line of `doc` is the `%%kitfile` cell magic. */
function isKitfileCell(doc) {
  for (let n = 1; n <= doc.lines; n++) {
    const text = doc.line(n).text;
    if (text.trim() !== '') {
      return KITFILE_MAGIC.test(text);
    }
  }
  return false;
}

/**
 * The CodeMirror extension for one cell editor: a compartment that holds JupyterLab's YAML
 * language at the highest precedence while the cell is a `%%kitfile` cell and nothing otherwise
 * (so an editor without a language never sees an empty language facet). `yaml` is shared by all
 * editors: `get()` returns the loaded LanguageSupport or null, `load()` a promise of it.
 */
function kitfileYaml(model, yaml) {
  const slot = new Compartment();
  const wanted = doc => CODE_MIMES.has(model.mimeType) && isKitfileCell(doc);
  const active = state => slot.get(state) !== NONE;
  // The edit that adds or removes the magic line switches the language in the same transaction.
  const follow = EditorState.transactionExtender.of(tr => {
    const support = yaml.get();
    if (!tr.docChanged || support === null) {
      return null;
    }
    const want = wanted(tr.newDoc);
    if (want === active(tr.startState)) {
      return null;
    }
    return { effects: slot.reconfigure(want ? Prec.highest(support) : NONE) };
  });
  // The cell's initial text, a change of the cell's MIME type (it is set once the kernel's
  // language is known, after the editor exists) and edits made before YAML has loaded: load it
  // if needed, then switch. The dispatch comes from a promise callback because a view cannot be
  // updated while it updates.
  const loader = ViewPlugin.define(view => {
    let alive = true;
    const sync = () => {
      const want = wanted(view.state.doc);
      if (want === active(view.state)) {
        return;
      }
      const ready = want ? yaml.load() : Promise.resolve(null);
      ready.then(support => {
        if (alive && wanted(view.state.doc) === want && want !== active(view.state) &&
            (support !== null || !want)) {
          view.dispatch({ effects: slot.reconfigure(want ? Prec.highest(support) : NONE) });
        }
      });
    };
    model.mimeTypeChanged.connect(sync);
    sync();
    return {
      update(update) {
        if (update.docChanged) {
          sync();
        }
      },
      destroy() {
        alive = false;
        model.mimeTypeChanged.disconnect(sync);
      }
    };
  });
  return [slot.of(NONE), follow, loader];
}

/** JupyterLab's YAML language, loaded on first use. */
function yamlFrom(languages) {
  let loaded = null;
  let loading = null;
  return {
    get: () => loaded,
    load: () => {
      if (loading === null) {
        loading = languages
          .getLanguage('yaml')
          .then(spec => {
            loaded = spec && spec.support ? spec.support : null;
            return loaded;
          })
          .catch(reason => {
            console.warn('kit-jupyter: YAML highlighting for %%kitfile is unavailable', reason);
            return null;
          });
      }
      return loading;
    }
  };
}

const plugin = {
  id: 'kit-jupyter:kitfile-yaml',
  description: 'Highlights %%kitfile cells as YAML.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: (app, extensions, languages) => {
    const yaml = yamlFrom(languages);
    extensions.addExtension({
      name: 'kit-jupyter:kitfile-yaml',
      // inline = a notebook or console cell; the file editor is left alone
      factory: options => {
        if (!options.inline) {
          return null;
        }
        const extension = kitfileYaml(options.model, yaml);
        return { instance: () => extension, reconfigure: () => null };
      }
    });
  }
};

export default plugin;
