import { expect } from 'chai';
import { cycles, specifiers } from '../../hack/check-imports.js';

describe('hack/check-imports (import direction, folder and file cycles)', () => {
  it('finds static, re-export, side-effect and dynamic imports, not ones in comments', () => {
    const code = [
      "import type { A } from '../accounts/types.js';",
      'import {',
      '  b,',
      "} from './b.js';",
      "export { c } from './c.js';",
      "import './side.js';",
      "const m = await import('../kube/client.js');",
      "// import { x } from '../agent/agent.js';",
      "/* import { y } from '../agent/agent.js'; */",
    ].join('\n');
    expect(specifiers(code)).to.deep.equal(['../accounts/types.js', './b.js', './c.js', './side.js', '../kube/client.js']);
  });

  it('reports a cycle of two or more nodes and a self-loop, not a chain', () => {
    const g = (edges: [string, string][]) => {
      const m = new Map<string, Set<string>>();
      for (const [a, b] of edges) {
        if (!m.has(a)) m.set(a, new Set());
        if (!m.has(b)) m.set(b, new Set());
        m.get(a)!.add(b);
      }
      return m;
    };
    expect(cycles(g([['agent', 'ipmi'], ['ipmi', 'backend'], ['backend', 'common']]))).to.deep.equal([]);
    expect(cycles(g([['agent', 'ipmi'], ['ipmi', 'agent'], ['ipmi', 'common']]))).to.deep.equal([['agent', 'ipmi']]);
    expect(cycles(g([['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'c']]))).to.deep.equal([['a', 'b', 'c']]);
    expect(cycles(g([['x', 'x']]))).to.deep.equal([['x']]);
  });
});
