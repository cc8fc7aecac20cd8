//! Dependency-graph checks shared by templates and portals: no self edges, no dangling
//! references, no cycles.

use std::collections::HashMap;
use std::hash::Hash;

use uuid::Uuid;

use crate::error::CommandError;

/// Checks the graph given as `(node, its dependencies)`. Errors name the offending tasks; a cycle
/// is reported as the path that closes it.
pub(crate) fn check<'a, I>(nodes: impl IntoIterator<Item = (I, &'a [I])>) -> Result<(), CommandError>
where
    I: Copy + Eq + Hash + Into<Uuid> + 'a,
{
    let nodes: Vec<(I, &[I])> = nodes.into_iter().collect();
    let index: HashMap<I, usize> = nodes.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
    for (id, deps) in &nodes {
        let mut out = Vec::with_capacity(deps.len());
        for dep in *deps {
            if dep == id {
                return Err(CommandError::SelfDependency { task: (*id).into() });
            }
            match index.get(dep) {
                Some(&j) => out.push(j),
                None => {
                    return Err(CommandError::UnknownDependency {
                        task: (*id).into(),
                        depends_on: (*dep).into(),
                    });
                }
            }
        }
        edges.push(out);
    }
    // Iterative three-colour depth-first search, so a 2,000-task chain cannot overflow the stack.
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut colour = vec![WHITE; nodes.len()];
    let mut parent = vec![usize::MAX; nodes.len()];
    for start in 0..nodes.len() {
        if colour[start] != WHITE {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = GREY;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&to) = edges[node].get(*next) {
                *next += 1;
                match colour[to] {
                    WHITE => {
                        colour[to] = GREY;
                        parent[to] = node;
                        stack.push((to, 0));
                    }
                    GREY => {
                        // `to` is an ancestor of `node`: walk the parents back to it, then
                        // state the cycle in edge order: to → … → node → to.
                        let mut back = Vec::new();
                        let mut at = node;
                        while at != to {
                            back.push(nodes[at].0.into());
                            at = parent[at];
                        }
                        let mut path = Vec::with_capacity(back.len() + 2);
                        path.push(nodes[to].0.into());
                        path.extend(back.into_iter().rev());
                        path.push(nodes[to].0.into());
                        return Err(CommandError::DependencyCycle { path });
                    }
                    _ => {}
                }
            } else {
                colour[node] = BLACK;
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn finds_cycles_and_dangling_edges() {
        let (a, b, c) = (u(1), u(2), u(3));
        assert!(check([(a, &[][..]), (b, &[a][..]), (c, &[a, b][..])]).is_ok());
        assert_eq!(check([(a, &[a][..])]), Err(CommandError::SelfDependency { task: a }));
        assert_eq!(
            check([(a, &[u(9)][..])]),
            Err(CommandError::UnknownDependency {
                task: a,
                depends_on: u(9)
            })
        );
        match check([(a, &[c][..]), (b, &[a][..]), (c, &[b][..])]) {
            Err(CommandError::DependencyCycle { path }) => {
                assert_eq!(path.len(), 4);
                assert_eq!(path.first(), path.last());
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let ids: Vec<Uuid> = (1..=5_000).map(u).collect();
        let deps: Vec<[Uuid; 1]> = ids.iter().map(|i| [u(i.as_u128() + 1)]).collect();
        let mut nodes: Vec<(Uuid, &[Uuid])> = ids.iter().zip(&deps).map(|(i, d)| (*i, &d[..])).collect();
        nodes.pop();
        nodes.push((u(5_000), &[]));
        assert!(check(nodes).is_ok());
    }
}
