//! The routes between a flow's steps, and the checks that follow them: steps no route reaches,
//! loops that never wait, and paths longer than one turn may run ([`MAX_STEPS_PER_TURN`]).
//!
//! Every walk here is iterative and takes time linear in the steps and routes. The server
//! checks flows when it reloads them, on a worker thread with a 2 MiB stack: a recursive walk
//! overflowed it on a 20,000-step chain and took the process down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::diagnostic::{Diagnostic, SourceMap};
use super::{Action, Flow, MAX_STEPS_PER_TURN, Step};

/// Marks a step not yet visited (or with no parent) in the per-step tables below.
const UNSEEN: usize = usize::MAX;

/// A flow's steps, numbered in name order, and the routes out of each.
pub struct Graph<'f> {
    flow: &'f Flow,
    steps: Vec<&'f Step>,
    /// Routes out of each step, in [`Action::targets`] order; a route to a missing step is left
    /// out (the compiler reports those).
    routes: Vec<Vec<usize>>,
    /// The same, without the routes out of a `wait`: the routes one turn can follow.
    same_turn: Vec<Vec<usize>>,
}

/// The strongly connected components of the routes one turn can follow.
struct Components {
    /// Each component's steps, the first one the walk reached first. A component comes after
    /// every component its steps lead to (Tarjan's order), so walking this list in order visits
    /// where a route leads before the step it leaves.
    list: Vec<Vec<usize>>,
    /// The component of each step, as an index into `list`.
    of: Vec<usize>,
}

/// Where a turn starts: the step, and why a turn starts there.
struct TurnStart {
    step: usize,
    why: String,
}

impl<'f> Graph<'f> {
    /// The graph of `flow`.
    pub fn new(flow: &'f Flow) -> Self {
        let steps: Vec<&Step> = flow.steps.values().collect();
        let mut graph = Graph {
            flow,
            steps,
            routes: Vec::new(),
            same_turn: Vec::new(),
        };
        graph.routes = graph
            .steps
            .iter()
            .map(|step| {
                let targets = step.action.targets();
                targets
                    .iter()
                    .filter_map(|name| graph.index(name))
                    .collect()
            })
            .collect();
        graph.same_turn = graph
            .steps
            .iter()
            .zip(&graph.routes)
            .map(|(step, routes)| match step.action {
                Action::Wait { .. } => Vec::new(),
                _ => routes.clone(),
            })
            .collect();
        graph
    }

    /// The number of the step called `name`: the steps come from a `BTreeMap`, so they are
    /// sorted by name.
    fn index(&self, name: &str) -> Option<usize> {
        self.steps
            .binary_search_by(|step| step.name.as_str().cmp(name))
            .ok()
    }

    /// Which steps a route from `roots` reaches (the roots included).
    pub fn reachable<'n>(&self, roots: impl IntoIterator<Item = &'n str>) -> Vec<bool> {
        let mut reached = vec![false; self.steps.len()];
        let mut pending: Vec<usize> = roots
            .into_iter()
            .filter_map(|name| self.index(name))
            .collect();
        while let Some(step) = pending.pop() {
            if !std::mem::replace(&mut reached[step], true) {
                pending.extend(&self.routes[step]);
            }
        }
        reached
    }

    /// The strongly connected components of the same-turn routes.
    fn components(&self) -> Components {
        Tarjan::new(&self.same_turn).run()
    }

    /// Whether the same-turn routes can come back to where they started in `component`.
    fn is_loop(&self, component: &[usize]) -> bool {
        match component {
            [single] => self.same_turn[*single].contains(single),
            _ => true,
        }
    }

    /// A shortest loop through the first step of `component`, that step first and last. The
    /// search stays inside the component and `parent` (shared by all components, which are
    /// disjoint) is only written there, so all loops together take linear time.
    fn loop_in(&self, component: &[usize], of: &[usize], parent: &mut [usize]) -> Vec<usize> {
        let Some(&first) = component.first() else {
            return Vec::new();
        };
        let mut pending = VecDeque::from([first]);
        while let Some(step) = pending.pop_front() {
            for &target in &self.same_turn[step] {
                if target == first {
                    let mut path = vec![first];
                    let mut at = step;
                    while at != first {
                        path.push(at);
                        at = parent[at];
                    }
                    path.push(first);
                    path.reverse();
                    return path;
                }
                if of[target] == of[first] && parent[target] == UNSEEN {
                    parent[target] = step;
                    pending.push_back(target);
                }
            }
        }
        vec![first, first]
    }

    /// Where turns start: the flow's start, and where each `wait` goes on a reply and on its
    /// timeout. Each step once, with the first reason found.
    fn turn_starts(&self) -> Vec<TurnStart> {
        let mut starts: BTreeMap<usize, String> = BTreeMap::new();
        if let Some(start) = self.index(&self.flow.start) {
            starts.insert(start, "the flow's `start`".to_owned());
        }
        for step in &self.steps {
            if let Action::Wait {
                on_reply,
                on_timeout,
                ..
            } = &step.action
            {
                for (target, why) in [
                    (on_reply, format!("where `{}` goes on a reply", step.name)),
                    (
                        on_timeout,
                        format!("where `{}` goes on its timeout", step.name),
                    ),
                ] {
                    if let Some(target) = self.index(target) {
                        starts.entry(target).or_insert(why);
                    }
                }
            }
        }
        starts
            .into_iter()
            .map(|(step, why)| TurnStart { step, why })
            .collect()
    }
}

/// Tarjan's algorithm with an explicit stack of (step, routes followed so far) in place of
/// recursion.
struct Tarjan<'g> {
    routes: &'g [Vec<usize>],
    /// When each step was reached, or [`UNSEEN`].
    order: Vec<usize>,
    /// The earliest step reachable from each step's subtree that is still on `stack`.
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    walk: Vec<(usize, usize)>,
    visited: usize,
    components: Components,
}

impl<'g> Tarjan<'g> {
    fn new(routes: &'g [Vec<usize>]) -> Self {
        let count = routes.len();
        Tarjan {
            routes,
            order: vec![UNSEEN; count],
            low: vec![0; count],
            on_stack: vec![false; count],
            stack: Vec::new(),
            walk: Vec::new(),
            visited: 0,
            components: Components {
                list: Vec::new(),
                of: vec![UNSEEN; count],
            },
        }
    }

    fn run(mut self) -> Components {
        for root in 0..self.routes.len() {
            if self.order[root] != UNSEEN {
                continue;
            }
            self.enter(root);
            while let Some(&(step, followed)) = self.walk.last() {
                let Some(&target) = self.routes[step].get(followed) else {
                    self.leave(step);
                    continue;
                };
                if let Some(top) = self.walk.last_mut() {
                    top.1 += 1;
                }
                if self.order[target] == UNSEEN {
                    self.enter(target);
                } else if self.on_stack[target] {
                    self.low[step] = self.low[step].min(self.order[target]);
                }
            }
        }
        self.components
    }

    fn enter(&mut self, step: usize) {
        self.order[step] = self.visited;
        self.low[step] = self.visited;
        self.visited += 1;
        self.on_stack[step] = true;
        self.stack.push(step);
        self.walk.push((step, 0));
    }

    /// Every route of `step` is followed: pass its `low` up, and close its component when it
    /// is the component's first step.
    fn leave(&mut self, step: usize) {
        self.walk.pop();
        if let Some(&(parent, _)) = self.walk.last() {
            self.low[parent] = self.low[parent].min(self.low[step]);
        }
        if self.low[step] != self.order[step] {
            return;
        }
        let mut members = Vec::new();
        while let Some(member) = self.stack.pop() {
            self.on_stack[member] = false;
            self.components.of[member] = self.components.list.len();
            members.push(member);
            if member == step {
                break;
            }
        }
        // The stack holds the steps in the order they were reached.
        members.reverse();
        self.components.list.push(members);
    }
}

/// Unreachable steps, loops that never wait, and paths that run more than
/// [`MAX_STEPS_PER_TURN`] steps in one turn.
pub fn check_graph(map: &SourceMap<'_>, flow: &Flow) -> Vec<Diagnostic> {
    let graph = Graph::new(flow);
    let mut errors = unreachable(map, &graph);
    let components = graph.components();
    let loops = loops(map, &graph, &components);
    // Path lengths are only defined without loops, and a loop is already an error.
    if loops.is_empty() {
        errors.extend(long_turns(map, &graph, &components));
    }
    errors.extend(loops);
    errors
}

fn unreachable(map: &SourceMap<'_>, graph: &Graph<'_>) -> Vec<Diagnostic> {
    let flow = graph.flow;
    let roots = std::iter::once(flow.start.as_str()).chain(flow.on_error.as_deref());
    let reached = graph.reachable(roots);
    // A `send` without `next` ends the run after its text, and the steps written after it
    // are then unreachable: say so once, at the send, rather than once per step below it.
    let mut explained = reached.clone();
    let mut errors = Vec::new();
    for end in graph.open_ends(&reached) {
        let Some(entry) = graph.first_unexplained_after(end, &explained) else {
            continue;
        };
        let never: Vec<usize> = graph
            .reachable([graph.steps[entry].name.as_str()])
            .into_iter()
            .enumerate()
            .filter(|&(step, reaches)| reaches && !explained[step])
            .map(|(step, _)| step)
            .collect();
        for &step in &never {
            explained[step] = true;
        }
        let never: Vec<&str> = never
            .iter()
            .map(|&step| graph.steps[step].name.as_str())
            .collect();
        let step = graph.steps[end];
        errors.push(map.error_at(
            step.at,
            format!(
                "step `{}` has no `next`: the run stops after its text, so {} never run{}; \
                 add `next = \"{}\"` (or make it an `end` step)",
                step.name,
                name_list(&never),
                if never.len() == 1 { "s" } else { "" },
                graph.steps[entry].name
            ),
        ));
    }
    errors.extend(
        graph
            .steps
            .iter()
            .zip(explained)
            .filter(|(_, explained)| !explained)
            .map(|(step, _)| {
                map.error_at(
                    step.at,
                    format!(
                        "step `{}` is unreachable: no route from `{}` leads to it",
                        step.name, flow.start
                    ),
                )
            }),
    );
    errors
}

impl Graph<'_> {
    /// The reached `send` steps with no `next`, in file order.
    fn open_ends(&self, reached: &[bool]) -> Vec<usize> {
        let mut ends: Vec<usize> = (0..self.steps.len())
            .filter(|&step| reached[step])
            .filter(|&step| matches!(self.steps[step].action, Action::Send { next: None, .. }))
            .collect();
        ends.sort_by_key(|&step| self.steps[step].at);
        ends
    }

    /// The step written first after `end` that is not yet `explained`, preferring one no other
    /// such step routes to (where the author's chain continues).
    fn first_unexplained_after(&self, end: usize, explained: &[bool]) -> Option<usize> {
        let after = self.steps[end].at;
        let candidates: Vec<usize> = (0..self.steps.len())
            .filter(|&step| !explained[step] && self.steps[step].at > after)
            .collect();
        let routed_to: BTreeSet<usize> = candidates
            .iter()
            .flat_map(|&step| self.routes[step].iter().copied())
            .filter(|&target| target != end)
            .collect();
        let at = |step: &usize| self.steps[*step].at;
        candidates
            .iter()
            .copied()
            .filter(|step| !routed_to.contains(step))
            .min_by_key(at)
            .or_else(|| candidates.iter().copied().min_by_key(at))
    }
}

/// `a`, `a` and `b`, `a`, `b` and `c`, in backquotes.
fn name_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// One error per loop of steps that do not wait: it would run forever on one event.
fn loops(map: &SourceMap<'_>, graph: &Graph<'_>, components: &Components) -> Vec<Diagnostic> {
    let mut parent = vec![UNSEEN; graph.steps.len()];
    components
        .list
        .iter()
        .filter(|component| graph.is_loop(component))
        .map(|component| {
            let path = graph.loop_in(component, &components.of, &mut parent);
            let names: Vec<&str> = path
                .iter()
                .map(|step| graph.steps[*step].name.as_str())
                .collect();
            let first = graph.steps[component[0]];
            map.error_at(
                first.at,
                format!(
                    "steps {} form a loop with no `wait` step: it would repeat forever",
                    route_text(&names)
                ),
            )
        })
        .collect()
}

/// A route as `a -> b -> c`, shortened in the middle when it is long (a loop of 20,000 steps
/// is one line, not a megabyte).
fn route_text(names: &[&str]) -> String {
    const HEAD: usize = 8;
    if names.len() <= HEAD + 4 {
        return names.join(" -> ");
    }
    format!(
        "{} -> ... -> {} ({} steps)",
        names[..HEAD].join(" -> "),
        names[names.len() - 2..].join(" -> "),
        names.len() - 1
    )
}

/// One error per step where a turn would cross [`MAX_STEPS_PER_TURN`]: the runtime hands the
/// conversation off there. The longest path from each step is found once, in the components'
/// order (each is a single step when there is no loop), so this is linear too.
fn long_turns(map: &SourceMap<'_>, graph: &Graph<'_>, components: &Components) -> Vec<Diagnostic> {
    // Steps a turn runs from each step to where it stops (that step and the wait included).
    let mut longest = vec![0_usize; graph.steps.len()];
    for &step in components.list.iter().flatten() {
        let rest = graph.same_turn[step]
            .iter()
            .map(|target| longest[*target])
            .max()
            .unwrap_or(0);
        longest[step] = rest + 1;
    }
    let mut reported = BTreeSet::new();
    let mut errors = Vec::new();
    for start in graph.turn_starts() {
        let length = longest[start.step];
        if length <= MAX_STEPS_PER_TURN {
            continue;
        }
        // Follow the longest path to the step that would run as number MAX + 1.
        let mut at = start.step;
        for _ in 0..MAX_STEPS_PER_TURN {
            let next = graph.same_turn[at]
                .iter()
                .copied()
                .find(|target| longest[*target] + 1 == longest[at]);
            let Some(next) = next else { break };
            at = next;
        }
        if !reported.insert(at) {
            continue;
        }
        let (step, from) = (graph.steps[at], &graph.steps[start.step].name);
        errors.push(map.error_at(
            step.at,
            format!(
                "step `{}` would be step {} of one turn without a `wait`: the runtime hands the \
                 conversation off after MAX_STEPS_PER_TURN = {MAX_STEPS_PER_TURN} steps in one \
                 turn (this turn starts at `{from}`, {}, and its longest path runs {length} \
                 steps); add a `wait` before this step or shorten the path",
                step.name,
                MAX_STEPS_PER_TURN + 1,
                start.why
            ),
        ));
    }
    errors
}
